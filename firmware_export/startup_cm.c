/*
 * startup_cm.c -- minimal Cortex-M startup for the fxtrain QEMU harness.
 *
 * Linked with -nostartfiles --specs=rdimon.specs and firmware_export/mps2.ld on the
 * QEMU boards mps2-an385 (M3), mps2-an386 (M4F) and mps2-an500 (M7). Output goes
 * through semihosting, so QEMU must run with -semihosting.
 *
 * The first vector (the initial stack pointer, top of RAM) is emitted by the linker
 * script, so this table holds only handlers and stays plain ISO C.
 */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t __data_load__, __data_start__, __data_end__, __bss_start__, __bss_end__;
extern int main(void);
extern void initialise_monitor_handles(void);

void Reset_Handler(void);
void Fault_Handler(void);
void _init(void);
void _fini(void);

/* -nostartfiles drops crti/crtn, yet newlib's init/fini code still calls these. */
void _init(void)
{
}

void _fini(void)
{
}

typedef void (*fx_vector)(void);

__attribute__((section(".vectors"), used)) static const fx_vector vectors[15] = {
    Reset_Handler, /* 1 reset */
    Fault_Handler, /* 2 NMI */
    Fault_Handler, /* 3 HardFault */
    Fault_Handler, /* 4 MemManage */
    Fault_Handler, /* 5 BusFault */
    Fault_Handler, /* 6 UsageFault */
    0, 0, 0, 0,    /* 7-10 reserved */
    Fault_Handler, /* 11 SVCall */
    Fault_Handler, /* 12 DebugMonitor */
    0,             /* 13 reserved */
    Fault_Handler, /* 14 PendSV */
    Fault_Handler  /* 15 SysTick */
};

/* Semihosting call (BKPT 0xAB): op in r0, argument in r1. */
static void semihost(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ __volatile__("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
}

/* Any fault ends the emulation with an error instead of hanging until the timeout. */
void Fault_Handler(void)
{
    semihost(0x04u, "fxtrain startup: processor fault\n"); /* SYS_WRITE0 */
    semihost(0x18u, (const void *)0x20023u);               /* SYS_EXIT, ADP_Stopped_InternalError */
    for (;;) {
    }
}

void Reset_Handler(void)
{
    const uint32_t *src = &__data_load__;
    uint32_t *dst;
#if defined(__ARM_FP)
    /* Grant CP10/CP11 (the FPU) before anything runs: hard-float newlib (printf)
     * uses FPU instructions, which fault while the coprocessor is disabled. */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm__ __volatile__("dsb\n\tisb" ::: "memory");
#endif
    for (dst = &__data_start__; dst < &__data_end__;) {
        *dst++ = *src++;
    }
    for (dst = &__bss_start__; dst < &__bss_end__;) {
        *dst++ = 0u;
    }
    /* Without this, newlib's stdout has no semihosting handle and prints nothing. */
    initialise_monitor_handles();
    exit(main());
}
