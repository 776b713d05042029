"""The package version, in a module of its own: every stage can read it without importing the
package root (which would tie the bottom of the pipeline to its top), and hatch reads it here."""
__version__ = "0.2.0"
