// elfutils from Debian's libdw-dev: libelf for ELF sections and symbols, libdw for DWARF (libdwfl only for
// dwfl_version, the elfutils version in messages).
#include <gelf.h>
#include <libelf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <dwarf.h>
