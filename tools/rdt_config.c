/* rdt_config - print every RDT_* knob: its value in this environment, its default, its help. */
#include <stdio.h>

#include "rdmatrain.h"

int main(void)
{
    rdt_config_print(stdout);
    return 0;
}
