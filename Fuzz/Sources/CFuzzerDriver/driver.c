// CFuzzerDriver is its header; SwiftPM wants a C target to have a source file.
#include "CFuzzerDriver.h"
