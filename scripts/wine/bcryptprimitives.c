/*
 * Test-only stand-in for Windows' bcryptprimitives.dll, for running viz.exe under
 * Debian bookworm's Wine 8.0, which lacks the DLL (Wine added it in 8.13). Rust's std
 * on Windows takes its random numbers (HashMap keys, and through getrandom our
 * keys and nonces) from ProcessPrng in that DLL since Rust 1.78.
 *
 * ProcessPrng is answered from RtlGenRandom (advapi32's SystemFunction036), the
 * system CSPRNG that Wine does implement. Never shipped to users: real Windows 10
 * and later have the real DLL. Built by scripts/wine-check.sh with
 *   x86_64-w64-mingw32-gcc -shared -O2 -o bcryptprimitives.dll bcryptprimitives.c
 */
#include <windows.h>

/* RtlGenRandom's real export name; ntsecapi.h's declaration needs extra defines. */
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
