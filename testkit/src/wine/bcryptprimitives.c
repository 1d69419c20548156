/* testkit's stand-in for Windows' bcryptprimitives.dll, for running
 * tagstrap.exe under wine 8 (see testkit/src/wine.rs). Rust's standard
 * library imports ProcessPrng from it (Windows 10+); wine 8's own
 * bcryptprimitives lacks that export, so the exe would not load. This one
 * answers ProcessPrng with BCryptGenRandom from the system RNG, which is
 * what ProcessPrng is on Windows: the same bytes source, not a weaker one.
 * Built with x86_64-w64-mingw32-gcc -shared, linked with -lbcrypt. */
#include <windows.h>
#include <bcrypt.h>

#ifndef BCRYPT_USE_SYSTEM_PREFERRED_RNG
#define BCRYPT_USE_SYSTEM_PREFERRED_RNG 0x00000002
#endif

/* BOOL ProcessPrng(PBYTE pbData, SIZE_T cbData): TRUE always on Windows;
 * here FALSE if the system RNG fails, so a failure is not silent. */
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    /* BCryptGenRandom takes a ULONG length: large requests in pieces. */
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (BCryptGenRandom(NULL, data, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG) != 0)
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}

BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, LPVOID reserved)
{
    (void)instance;
    (void)reason;
    (void)reserved;
    return TRUE;
}
