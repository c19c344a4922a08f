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


# transport/tcp_wire.c, shm_wire.c, verbs_wire.c
COMM = 0x0123456789ABCDEF
MASK64 = (1 << 64) - 1
MSG_MAGIC, NOTE_MAGIC, TCP_HS_MAGIC = 0x31544452, 0x41544452, 0x48544452
SHM_MAGIC, VERBS_MAGIC, VERBS_CM_MAGIC = 0x4D485352, 0x56544452, 0x43544452


def hdr_check(tag, length, magic):
    h = ((tag * 0x9E3779B97F4A7C15) & MASK64) ^ ((length * 0xC2B2AE3D27D4EB4F) & MASK64) ^ magic
    h ^= h >> 29
    return (h ^ (h >> 32)) & 0xFFFFFFFF


def frame(tag, length, magic=MSG_MAGIC, check=None):
    if check is None:
        check = hdr_check(tag, length, magic)
    return struct.pack("<IIQQ", magic, check, tag, length)


def tcp_hs(version=1, token=TOKEN, comm=COMM, rank=0, nranks=4, magic=TCP_HS_MAGIC):
    return struct.pack("<II", magic, version) + token + struct.pack("<QII", comm, rank, nranks)


def tcp_hs_seed(mode, self_rank, nranks, body):
    return struct.pack(">BHH", mode, self_rank, nranks) + body


def notice(sentence):
    n = len(sentence)
    return (frame(0, n + 12, NOTE_MAGIC) + sentence +
            struct.pack("<III", n, hdr_check(0, n, NOTE_MAGIC), NOTE_MAGIC))


def trailer(n, magic=NOTE_MAGIC, check=None):
    if check is None:
        check = hdr_check(0, n, magic)
    return struct.pack("<III", n, check, magic)


def note(sentence, **kw):
    return sentence + trailer(len(sentence), **kw)


def notice_seed(prefix_len, body):
    return bytes([prefix_len]) + body


SHM_MSG_MAGIC, SHM_RTS_MAGIC = 0x31534452, 0x32534452


def shm_msg(tag, length, magic=SHM_MSG_MAGIC, check=None):
    if check is None:
        check = hdr_check(tag, length, magic)
    return struct.pack("<IIQQ", magic, check, tag, length)


def shm_rts(tag, length, addr=0x7FFF00001000, seq=0, check=None):
    return shm_msg(tag, length, SHM_RTS_MAGIC, check) + struct.pack("<QQ", addr, seq)


def shm_msg_seed(mode, due, body):
    return struct.pack(">BQ", mode, due) + body


def shm_addr(pid=4242, memfd=5, efd=6, letter=b"S", version=1):
    return letter + bytes([version, 0, 0]) + struct.pack("<III", pid, memfd, efd)


def shm_hdr(rank=1, nranks=4, comm=COMM, token=TOKEN, pid=4242, ring=256 << 10,
            magic=SHM_MAGIC, version=1):
    # rdt_shm_seg_hdr_t, native layout on x86-64 / aarch64 (little-endian, no padding), then the
    # rest of the first cache line of the page
    return struct.pack("<IIIIQ16sIIQQQ", magic, version, rank, nranks, comm, token, pid, 0,
                       ring, 0x5EED, 0x7FFF12345678) + bytes(56)


def shm_seed(mode, nranks, self_rank, peer, addr, hdr, file_bytes=0):
    return struct.pack(">BHHHQ", mode, nranks, self_rank, peer, file_bytes) + addr + hdr


def verbs_rec(rank=0, nranks=2, comm=COMM, token=TOKEN, qpn=0x11, psn=0x123456, lid=0, mtu=3,
              slot=64 << 10, raddr=0x7F0000000000, rkey=0x1234, version=2,
              gid=bytes(10) + b"\xff\xff" + bytes([10, 0, 0, 1])):
    return struct.pack("<II16sQIIIIHBBI16sQII", VERBS_MAGIC, version, token, comm, rank, nranks,
                       qpn, psn, lid, mtu, 0, slot, gid, raddr, rkey, 0)


def verbs_cm_rec(rank=0, nranks=2, comm=COMM, token=TOKEN, slot=64 << 10, raddr=0x7F0000000000,
                 rkey=0x1234, version=1):
    # the rdma_cm private data (RDT_IB_CM=rdmacm): hello, raddr, rkey, slot size
    return struct.pack("<II16sQIIQII", VERBS_CM_MAGIC, version, token, comm, rank, nranks, raddr,
                       rkey, slot)


def verbs_seed(mode, self_rank, nranks, body):
    return struct.pack(">BHH", mode, self_rank, nranks) + body


# engine/ctl_wire.c: the status channel's datagram
CTL_QUERY, CTL_ANSWER, CTL_GAVE_UP = 1, 2, 3


def ctl(mtype=CTL_QUERY, state=0, comm=COMM, token=TOKEN, frm=0, to=2, nonce=7, wait=(),
        text=b"", magic=b"RDTS", version=1, reserved=0, nwait=None, textlen=None, slots=None):
    slots = list(wait) + [0] * (16 - len(wait)) if slots is None else slots
    nwait = len(wait) if nwait is None else nwait
    textlen = len(text) if textlen is None else textlen
    return (magic + bytes([version, mtype, state, reserved]) + struct.pack("<Q", comm) + token +
            struct.pack("<IIIHH", frm, to, nonce, nwait, textlen) +
            struct.pack("<16I", *slots) + text)


def ctl_seed(mode, nranks, me, body):
    return struct.pack(">BHH", mode, nranks, me) + body


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
    "fuzz_tcp_handshake": {
        # mode 3: the job is the handshake's own (token, communicator, size)
        "rank0_to_rank2_of_4": tcp_hs_seed(3, 2, 4, tcp_hs(rank=0)),
        "rank1_then_a_message": tcp_hs_seed(3, 3, 4, tcp_hs(rank=1) + frame(7, 8) + bytes(8)),
        "wrong_token": tcp_hs_seed(2, 2, 4, tcp_hs()),
        "version_7": tcp_hs_seed(3, 2, 4, tcp_hs(version=7)),
        "other_communicator": tcp_hs_seed(1, 2, 4, tcp_hs(comm=0x1234)),
        "size_2^32-1": tcp_hs_seed(1, 2, 4, tcp_hs(nranks=0xFFFFFFFF)),
        "rank_2^32-1": tcp_hs_seed(3, 2, 4, tcp_hs(rank=0xFFFFFFFF)),
        "claims_own_rank": tcp_hs_seed(3, 2, 4, tcp_hs(rank=2)),
        "message_header_instead": tcp_hs_seed(3, 2, 4, frame(0x1234, 1 << 62) + tcp_hs()),
        "truncated_20_bytes": tcp_hs_seed(3, 2, 4, tcp_hs()[:20]),
        "http_garbage": tcp_hs_seed(0, 1, 2, b"GET / HTTP/1.0\r\nHost: x\r\n\r\n\r\n\r\n"),
    },
    "fuzz_tcp_frame": {
        "msg_4096_bytes": frame(0x0000000100000002, 4096) + bytes(16),
        "msg_empty": frame(0, 0),
        "msg_2^62_bytes": frame(0x1234, 1 << 62),
        "notice_then_trailer": notice(b"rank 2 (host h) lost: its process 123 died"),
        "check_off_by_one": frame(5, 100, check=hdr_check(5, 100, MSG_MAGIC) ^ 1),
        "notice_magic_msg_check": frame(5, 100, NOTE_MAGIC, check=hdr_check(5, 100, MSG_MAGIC)),
        "http_garbage": b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n",
        "truncated_10_bytes": frame(1, 2)[:10],
    },
    "fuzz_tcp_notice": {
        # byte 0: the encoder's prefix length (mod 64); then the last bytes of a stream
        "notice_alone": notice_seed(0, note(b"rank 2 (host h) lost: its process 123 died")),
        "notice_after_payload": notice_seed(5, bytes(300) + note(b"rank 1 gave up: abort")),
        "notice_max_400": notice_seed(0, note(b"x" * 400)),
        "notice_401": notice_seed(0, note(b"x" * 401)),
        "notice_empty": notice_seed(3, trailer(0)),
        "notice_unprintable": notice_seed(0, note(b"bell\x07 nul\x00 esc\x1b high\xff")),
        "longer_than_held": notice_seed(0, b"short" + trailer(9)),
        "check_off_by_one": notice_seed(0, note(b"why", check=hdr_check(0, 3, NOTE_MAGIC) ^ 1)),
        "message_magic": notice_seed(0, note(b"why", magic=MSG_MAGIC)),
        "framed_notice": notice_seed(1, notice(b"rank 0 (host a) gave up: timeout")),
        "stream_of_zeros": notice_seed(0, bytes(64)),
        "truncated_trailer": notice_seed(0, note(b"why")[:-1]),
    },
    "fuzz_shm_msg": {
        # mode bit 0: the sequence due is the request's own; bit 1: the check word is made right
        "msg_4096_bytes": shm_msg_seed(0, 0, shm_msg(0x0000000100000002, 4096) + bytes(16)),
        "msg_empty": shm_msg_seed(0, 0, shm_msg(0, 0)),
        "msg_2^62_bytes": shm_msg_seed(0, 0, shm_msg(0x1234, 1 << 62)),
        "rts_1MiB_seq_0": shm_msg_seed(0, 0, shm_rts(7, 1 << 20)),
        "rts_seq_5_due_5": shm_msg_seed(0, 5, shm_rts(7, 1 << 20, seq=5) + bytes(24)),
        "rts_seq_5_due_3": shm_msg_seed(0, 3, shm_rts(7, 1 << 20, seq=5)),
        "rts_own_seq_2^64-1": shm_msg_seed(1, 0, shm_rts(9, 64 << 10, seq=(1 << 64) - 1)),
        "rts_addr_0": shm_msg_seed(0, 0, shm_rts(9, 64 << 10, addr=0)),
        "rts_cut_to_32": shm_msg_seed(0, 0, shm_rts(7, 1 << 20)[:32]),
        "rts_with_msg_check": shm_msg_seed(0, 0, shm_rts(7, 100,
                                                         check=hdr_check(7, 100, SHM_MSG_MAGIC))),
        "check_off_by_one": shm_msg_seed(0, 0, shm_msg(5, 100,
                                                       check=hdr_check(5, 100, SHM_MSG_MAGIC) ^ 1)),
        "tcp_frame_instead": shm_msg_seed(2, 0, frame(5, 100)),
        "garbage_check_fixed": shm_msg_seed(2, 0, b"RDS2" + bytes(4) + b"garbage in the ring!" * 2),
        "truncated_10_bytes": shm_msg_seed(0, 0, shm_msg(1, 2)[:10]),
    },
    "fuzz_shm_addr": {
        # mode 15: the job, the peer, the pid and the file size are the header's own
        "peer1_of_4_at_rank0": shm_seed(15, 4, 0, 1, shm_addr(), shm_hdr()),
        "ring_1GiB_slot_3_of_4": shm_seed(15, 4, 3, 1, shm_addr(), shm_hdr(ring=1 << 30)),
        "ring_4KiB_65535_ranks": shm_seed(15, 9, 65534, 0, shm_addr(),
                                          shm_hdr(rank=3, nranks=65535, ring=4096)),
        "ring_not_power_of_two": shm_seed(15, 4, 0, 1, shm_addr(), shm_hdr(ring=(256 << 10) + 1)),
        "ring_2^63": shm_seed(15, 4, 0, 1, shm_addr(), shm_hdr(ring=1 << 63)),
        "ring_2KiB": shm_seed(15, 4, 0, 1, shm_addr(), shm_hdr(ring=2048)),
        "other_pid": shm_seed(11, 4, 0, 1, shm_addr(pid=4243), shm_hdr()),
        "wrong_token": shm_seed(14, 4, 0, 1, shm_addr(), shm_hdr()),
        "other_communicator": shm_seed(13, 4, 0, 1, shm_addr(), shm_hdr(comm=0x1234)),
        "wrong_magic": shm_seed(15, 4, 0, 1, shm_addr(), shm_hdr(magic=0x4D485353)),
        "addr_of_tcp": shm_seed(15, 4, 0, 1, bytes([4, 0, 0x73, 0x3C, 127, 0, 0, 1]) + bytes(8),
                                shm_hdr()),
        "addr_version_2": shm_seed(15, 4, 0, 1, shm_addr(version=2), shm_hdr()),
        "file_of_one_slot": shm_seed(7, 4, 3, 1, shm_addr(), shm_hdr(),
                                     4096 + (4096 + (256 << 10))),
        "short_header": shm_seed(15, 4, 0, 1, shm_addr(), shm_hdr()[:40]),
    },
    "fuzz_verbs_record": {
        # mode 3: the job is the record's own; bit 2: the connector reading the answer
        "acceptor_rank0_of_2": verbs_seed(3, 1, 2, verbs_rec()),
        "connector_answer_rank3_of_4": verbs_seed(7, 1, 4, verbs_rec(rank=3, nranks=4)),
        "ib_lid_mtu_4096": verbs_seed(3, 3, 4, verbs_rec(rank=2, nranks=4, lid=0x17, mtu=5,
                                                         gid=bytes(16))),
        "mtu_0": verbs_seed(3, 1, 2, verbs_rec(mtu=0)),
        "mtu_6": verbs_seed(3, 1, 2, verbs_rec(mtu=6)),
        "qpn_2^24": verbs_seed(3, 1, 2, verbs_rec(qpn=1 << 24)),
        "qpn_1": verbs_seed(3, 1, 2, verbs_rec(qpn=1)),
        "psn_2^24": verbs_seed(3, 1, 2, verbs_rec(psn=1 << 24)),
        "raddr_0": verbs_seed(3, 1, 2, verbs_rec(raddr=0)),
        "raddr_wraps": verbs_seed(3, 1, 2, verbs_rec(raddr=0xFFFFFFFFFFFF0000)),
        "buffer_2^63": verbs_seed(0x0B, 1, 2, verbs_rec(raddr=1 << 63)),
        "slot_size_4096": verbs_seed(3, 1, 2, verbs_rec(slot=4096)),
        "wrong_token": verbs_seed(2, 1, 2, verbs_rec()),
        "version_1": verbs_seed(3, 1, 2, verbs_rec(version=1)),
        "claims_own_rank": verbs_seed(3, 1, 2, verbs_rec(rank=1)),
        "connector_wrong_rank": verbs_seed(7, 1, 4, verbs_rec(rank=9, nranks=4)),
        "tcp_handshake_instead": verbs_seed(3, 1, 2, tcp_hs() + bytes(48)),
        "rdmacm_acceptor_rank0_of_2": verbs_seed(3, 1, 2, verbs_cm_rec()),
        "rdmacm_connector_answer_rank3_of_4": verbs_seed(7, 1, 4, verbs_cm_rec(rank=3, nranks=4)),
        "rdmacm_raddr_wraps": verbs_seed(3, 1, 2, verbs_cm_rec(raddr=0xFFFFFFFFFFFF0000)),
    },
    "fuzz_ctl": {
        # mode 3: the job is the datagram's own (token, communicator); rank 2 of 4 receives
        "query_0_to_2": ctl_seed(3, 4, 2, ctl()),
        "answer_waiting_for_1_3": ctl_seed(3, 4, 2, ctl(CTL_ANSWER, 1, frm=3, wait=(1, 3),
                                                        text=b"allreduce #12 (int64 x 7, ring)")),
        "answer_idle": ctl_seed(3, 4, 2, ctl(CTL_ANSWER, 0, frm=1)),
        "answer_16_waited": ctl_seed(3, 20, 2, ctl(CTL_ANSWER, 1, frm=19, wait=range(16))),
        "gave_up": ctl_seed(3, 4, 2, ctl(CTL_GAVE_UP, frm=1,
                                         text=b"rank 1 (host h) gave up: timed out " * 25)),
        "gave_up_900_bytes": ctl_seed(3, 4, 2, ctl(CTL_GAVE_UP, frm=1, text=b"x" * 900)),
        "wrong_token": ctl_seed(2, 4, 2, ctl()),
        "other_communicator": ctl_seed(1, 4, 2, ctl(comm=0x1234)),
        "job_communicator_fixed_token": ctl_seed(0, 4, 2, ctl(token=bytes([0x52, 0x44, 0x54, 0x2D,
                                                                      0x66, 0x75, 0x7A, 0x7A,
                                                                      0x2D, 0x74, 0x6F, 0x6B,
                                                                      0x65, 0x6E, 0x21, 0x00]))),
        "magic_of_tcp": ctl_seed(3, 4, 2, ctl(magic=b"RDTH")),
        "version_2": ctl_seed(3, 4, 2, ctl(version=2)),
        "type_0": ctl_seed(3, 4, 2, ctl(mtype=0)),
        "type_4": ctl_seed(3, 4, 2, ctl(mtype=4)),
        "state_2": ctl_seed(3, 4, 2, ctl(CTL_ANSWER, 2, frm=1)),
        "reserved_byte_set": ctl_seed(3, 4, 2, ctl(reserved=0x80)),
        "from_self": ctl_seed(3, 4, 2, ctl(frm=2)),
        "from_2^32-1": ctl_seed(3, 4, 2, ctl(frm=0xFFFFFFFF)),
        "to_other_rank": ctl_seed(3, 4, 2, ctl(to=1)),
        "to_out_of_range": ctl_seed(3, 4, 2, ctl(to=4)),
        "17_waited": ctl_seed(3, 40, 2, ctl(CTL_ANSWER, 1, frm=1, wait=range(16), nwait=17)),
        "nwait_high_byte": ctl_seed(3, 4, 2, ctl(CTL_ANSWER, 1, frm=1, nwait=0x100)),
        "waited_rank_out_of_range": ctl_seed(3, 4, 2, ctl(CTL_ANSWER, 1, frm=1, wait=(0, 4))),
        "unused_slot_set": ctl_seed(3, 4, 2, ctl(CTL_ANSWER, 1, frm=1,
                                                 slots=[1, 3] + [0] * 13 + [1], nwait=2)),
        "text_901": ctl_seed(3, 4, 2, ctl(CTL_GAVE_UP, frm=1, text=b"y" * 901)),
        "text_length_65535": ctl_seed(3, 4, 2, ctl(CTL_GAVE_UP, frm=1, text=b"z" * 10,
                                                   textlen=0xFFFF)),
        "text_longer_than_said": ctl_seed(3, 4, 2, ctl(CTL_GAVE_UP, frm=1, text=b"abcdef",
                                                       textlen=5)),
        "text_shorter_than_said": ctl_seed(3, 4, 2, ctl(CTL_GAVE_UP, frm=1, text=b"abcdef",
                                                        textlen=7)),
        "text_unprintable": ctl_seed(3, 4, 2, ctl(CTL_GAVE_UP, frm=1, text=b"gave up\n\x1b[2J")),
        "text_nul": ctl_seed(3, 4, 2, ctl(CTL_GAVE_UP, frm=1, text=b"ab\x00cd")),
        "truncated_header": ctl_seed(3, 4, 2, ctl()[:60]),
        "empty": ctl_seed(0, 4, 2, b""),
        "one_rank": ctl_seed(3, 1, 0, ctl(to=0)),
        "http_garbage": ctl_seed(0, 4, 2, b"GET / HTTP/1.0\r\nHost: x\r\n\r\n"),
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
