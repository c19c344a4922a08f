/* status.c - status strings, generated from the same X-macro table as the enum. */
#include "rdmatrain.h"

const char *rdt_status_str(rdt_status_t status)
{
    static const char *const strs[] = {
#define RDT_STATUS_STR_(name, str) str,
        RDT_STATUS_TABLE(RDT_STATUS_STR_)
#undef RDT_STATUS_STR_
    };
    if ((unsigned)status >= (unsigned)RDT_STATUS_COUNT)
        return "unknown status";
    return strs[status];
}

size_t rdt_dtype_size(rdt_dtype_t dtype)
{
    static const size_t sizes[RDT_DTYPE_COUNT] = {1, 1, 4, 4, 8, 8, 2, 2, 4, 8};
    if ((unsigned)dtype >= (unsigned)RDT_DTYPE_COUNT)
        return 0;
    return sizes[dtype];
}

const char *rdt_dtype_name(rdt_dtype_t dtype)
{
    static const char *const names[RDT_DTYPE_COUNT] = {
        "int8", "uint8", "int32", "uint32", "int64", "uint64",
        "float16", "bfloat16", "float32", "float64"};
    if ((unsigned)dtype >= (unsigned)RDT_DTYPE_COUNT)
        return "invalid";
    return names[dtype];
}

const char *rdt_op_name(rdt_op_t op)
{
    static const char *const names[RDT_OP_COUNT] = {"sum", "prod", "min", "max", "avg"};
    if ((unsigned)op >= (unsigned)RDT_OP_COUNT)
        return "invalid";
    return names[op];
}
