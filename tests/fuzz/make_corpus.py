#!/usr/bin/env python3
"""make_corpus.py - write the seed inputs of the fuzz targets into tests/fuzz/corpus/<target>/.

The seeds are valid messages (and the classic invalid ones) laid out as each target reads its
input; see the comment at the top of each fuzz_*.c. Run it again after changing a layout:
    tests/fuzz/make_corpus.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
TOKEN = bytes(range(0xA0, 0xB0))
RDT_ERR_CONFIG, RDT_IN_PROGRESS = 10, 12


def hello(version=1, token=TOKEN, nranks=4, rank=1, blob_len=37):
    return b"RDTH" + struct.pack(">I", version) + token + struct.pack(">IIQ", nranks, rank, blob_len)


def hello_seed(mode, nranks, nbytes, body):
    return struct.pack(">BHH", mode, nranks, nbytes) + body


def reply_seed(mode, nranks, nbytes, status, body_len, body):
    return (struct.pack(">BHI", mode, nranks, nbytes) + b"RDTR" +
            struct.pack(">IQ", status, body_len) + body)


def wire_seed(addr, tag, length, bit, token):
    addr = addr + bytes(24 - len(addr))
    return addr + struct.pack("<QQ", tag, length) + bytes([bit]) + token


SEEDS = {
    "fuzz_bootstrap_hello": {
        # mode 3: the job is the hello's own (token, size, blob length): a member's hello
        "member_rank1_of_4": hello_seed(3, 4, 37, hello() + bytes(37)),
        "member_rank3_of_4_no_blob": hello_seed(3, 4, 0, hello(rank=3, blob_len=0)),
        "stranger_wrong_token": hello_seed(2, 4, 37, hello()),
        "wrong_version": hello_seed(3, 4, 37, hello(version=2)),
        "member_huge_blob_len": hello_seed(1, 4, 37, hello(blob_len=1 << 62)),
        "member_claims_rank_0": hello_seed(3, 4, 37, hello(rank=0)),
        "member_rank_out_of_range": hello_seed(1, 4, 37, hello(rank=0xFFFFFFFF)),
        "member_other_job_size": hello_seed(1, 8, 37, hello(nranks=4)),
        "truncated_20_bytes": hello_seed(3, 4, 37, hello()[:20]),
        "http_garbage": hello_seed(0, 4, 37, b"GET / HTTP/1.0\r\nHost: x\r\n\r\n"),
    },
    "fuzz_bootstrap_reply": {
        # mode 0x20: a 16-byte sentence buffer; mode bit 0: expect the announced table length
        "table_3_ranks_of_5": reply_seed(0, 3, 5, 0, 15, bytes(range(15))),
        "table_wrong_length": reply_seed(0, 3, 5, 0, 16, bytes(16)),
        "error_sentence": reply_seed(0x20, 4, 37, RDT_ERR_CONFIG, 40,
                                     b"rendezvous on 127.0.0.1:1: rank 2\x07\x00\xff bad!"),
        "error_too_long": reply_seed(0, 4, 37, RDT_ERR_CONFIG, 513, b"x" * 64),
        "status_in_progress_huge": reply_seed(0, 4, 37, RDT_IN_PROGRESS, 1 << 62, b""),
        "status_out_of_range": reply_seed(1, 4, 37, 0xFFFFFFFF, 5, b"abcde"),
        "not_a_reply": struct.pack(">BHI", 0, 2, 8) + b"HTTP/1.1 200 OK\r\n\r\n",
    },
    "fuzz_wire": {
        "v4_loopback_29500": wire_seed(bytes([4, 0, 0x73, 0x3C, 127, 0, 0, 1]), 0x0000000100000002,
                                       4096, 3, TOKEN),
        "v6_loopback": wire_seed(bytes([6, 0, 0, 5]) + bytes(15) + b"\x01", 7, 1 << 62, 70, TOKEN),
        "v6_link_local_scope_2": wire_seed(bytes([6, 0, 0x1F, 0x90, 0xFE, 0x80]) + bytes(13) +
                                           b"\x01" + struct.pack(">I", 2), 0, 0, 127, TOKEN),
        "unknown_family": wire_seed(bytes([5, 0, 1, 1, 10, 0, 0, 1]), 1, 1, 0, TOKEN),
        "port_zero": wire_seed(bytes([4, 0, 0, 0, 10, 0, 0, 1]), 1 << 63, 1, 64, TOKEN),
    },
    "fuzz_hostfile": {
        "openmpi_file": b"\x00node1 slots=4\nnode2 slots=4 max_slots=8 # big\nnode3\n",
        "horovod_file": b"\x04# hosts\r\nnode1:4\r\n\r\nuser@node2:2\r\n",
        "inline_list": b"\x01node1:2,node2:2",
        "inline_bare": b"\x03localhost,fuzzhost.example",
    },
}


def main():
    for target, seeds in SEEDS.items():
        d = os.path.join(HERE, "corpus", target)
        os.makedirs(d, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
