"""Shared fixtures: the digits data and trained runs, built once per session."""
import pytest
from hypothesis import settings

# The first call of a jitted helper compiles (or loads its cache); a timing deadline
# would turn that into a flaky failure, and timing does not belong in tests anyway.
settings.register_profile("fxtrain", deadline=None)
settings.load_profile("fxtrain")


@pytest.fixture(scope="session")
def digits():
    from fxtrain.data import load_dataset
    return load_dataset("digits", 0)


@pytest.fixture(scope="session")
def trained(digits):
    """Default-arch runs after the default epochs, keyed by (method, bits, seed)."""
    from fxtrain.training.config import TrainConfig
    from fxtrain.training.run import Run
    cache = {}

    def get(method, bits=8, seed=0, **kw):
        key = (method, bits, seed, tuple(sorted(kw.items())))
        if key not in cache:
            run = Run(TrainConfig(method=method, bits=bits, seed=seed, **kw), digits)
            for _ in range(run.cfg.epochs):
                run.step_epoch()
            cache[key] = run
        return cache[key]
    return get


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With FXTRAIN_REQUIRE_TOOLCHAIN=1 (set by .ci/run), a toolchain skip is a failure:
    in CI the firmware tests must run, not quietly skip."""
    import os
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and os.environ.get("FXTRAIN_REQUIRE_TOOLCHAIN") == "1":
        reason = str(rep.longrepr[-1]) if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        if "not installed" in reason:
            rep.outcome = "failed"
            rep.longrepr = f"required toolchain missing in CI: {reason}"
