#include <stdint.h>
#include <stddef.h>
#include <intel-ipsec-mb.h>
