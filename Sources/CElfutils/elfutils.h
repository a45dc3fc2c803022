// elfutils from Debian's libdw-dev: libelf for ELF sections and symbols, libdw for DWARF.
#include <gelf.h>
#include <libelf.h>
#include <elfutils/libdw.h>
#include <dwarf.h>
