/* testkit's stand-in for powershell.exe, for running tagstrap.exe under
 * wine (see testkit/src/wine.rs). Wine's own powershell.exe is a stub that
 * exits 0 without running anything, and no real PowerShell runs here; this
 * one records what tagstrap started it with, so a test can check it:
 *
 *   powershell.cmdline  its command line exactly as received
 *                       (GetCommandLineW), one line per start, appended
 *   powershell.env      its whole environment block, one NAME=value a line
 *   powershell.script   a copy of the file named after -File
 *
 * all UTF-8, in the directory this exe is in, and exits with the decimal
 * code in powershell.exit there (0 when that file is missing). It prints
 * one line to stdout, so a test sees the script's output reach tagstrap's.
 * Built with x86_64-w64-mingw32-gcc -municode, linked with -lshell32. */
#include <windows.h>
#include <shellapi.h>
#include <stdio.h>
#include <stdlib.h>
#include <wchar.h>

static wchar_t dir[MAX_PATH];

/* DIR\name, in a static buffer (one use at a time). */
static const wchar_t *beside(const wchar_t *name)
{
    static wchar_t path[MAX_PATH + 64];
    _snwprintf(path, sizeof path / sizeof path[0], L"%ls\\%ls", dir, name);
    path[sizeof path / sizeof path[0] - 1] = 0;
    return path;
}

/* Appends a UTF-16 string, as UTF-8, then a newline. */
static void put_utf8(HANDLE file, const wchar_t *text)
{
    int n = WideCharToMultiByte(CP_UTF8, 0, text, -1, NULL, 0, NULL, NULL);
    char *bytes = malloc(n > 0 ? n : 1);
    DWORD written;
    if (n > 0 && bytes && WideCharToMultiByte(CP_UTF8, 0, text, -1, bytes, n, NULL, NULL) > 0)
        WriteFile(file, bytes, (DWORD)(n - 1), &written, NULL);
    WriteFile(file, "\n", 1, &written, NULL);
    free(bytes);
}

static HANDLE open_out(const wchar_t *name, BOOL append)
{
    HANDLE file = CreateFileW(beside(name), append ? FILE_APPEND_DATA : GENERIC_WRITE,
                              FILE_SHARE_READ, NULL, append ? OPEN_ALWAYS : CREATE_ALWAYS,
                              FILE_ATTRIBUTE_NORMAL, NULL);
    if (file == INVALID_HANDLE_VALUE) {
        fwprintf(stderr, L"stand-in powershell: cannot write %ls\n", beside(name));
        ExitProcess(125);
    }
    return file;
}

int wmain(void)
{
    const wchar_t *line = GetCommandLineW();
    wchar_t *slash;
    HANDLE out;
    int argc, i, code = 0;
    wchar_t **argv;
    FILE *exit_file;

    GetModuleFileNameW(NULL, dir, MAX_PATH);
    slash = wcsrchr(dir, L'\\');
    if (slash)
        *slash = 0;

    out = open_out(L"powershell.cmdline", TRUE);
    put_utf8(out, line);
    CloseHandle(out);

    out = open_out(L"powershell.env", FALSE);
    {
        wchar_t *block = GetEnvironmentStringsW(), *var;
        for (var = block; var && *var; var += wcslen(var) + 1)
            put_utf8(out, var);
        FreeEnvironmentStringsW(block);
    }
    CloseHandle(out);

    argv = CommandLineToArgvW(line, &argc);
    for (i = 1; argv && i + 1 < argc; i++) {
        if (_wcsicmp(argv[i], L"-File") == 0) {
            if (!CopyFileW(argv[i + 1], beside(L"powershell.script"), FALSE)) {
                fwprintf(stderr, L"stand-in powershell: cannot read %ls\n", argv[i + 1]);
                return 125;
            }
            wprintf(L"stand-in powershell: ran %ls\n", argv[i + 1]);
            break;
        }
    }

    exit_file = _wfopen(beside(L"powershell.exit"), L"r");
    if (exit_file) {
        if (fscanf(exit_file, "%d", &code) != 1)
            code = 125;
        fclose(exit_file);
    }
    fflush(stdout);
    return code;
}
