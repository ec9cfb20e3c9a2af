#include "p0f_codec.h"
int main(void) { return 0; }
