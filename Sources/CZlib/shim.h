// zlib, for the deflate members of scipy's .npz files (Debian: zlib1g-dev).
//
// `inflateInit2` is a macro (it passes the library version and the stream's size for a check),
// which Swift cannot call: this wrapper is the one line of glue.
#ifndef SHARDWISE_CZLIB_SHIM_H
#define SHARDWISE_CZLIB_SHIM_H

#include <zlib.h>

/// inflateInit2 for raw deflate data (no zlib header), as zip members hold it.
static inline int shardwise_inflate_init_raw(z_stream *stream) {
    return inflateInit2(stream, -MAX_WBITS);
}

#endif
