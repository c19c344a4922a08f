/*
 * rdmatrain as a torch.distributed backend (PyTorch 1.13, c10d::ProcessGroup).
 *
 * C++ only where libtorch demands it: a ProcessGroup subclass, its Work objects and the pybind11
 * module. Everything that talks to the engine goes through include/rdmatrain.h.
 *
 * Threading. The engine's communicator is single-threaded (rdmatrain.h: "a communicator may be
 * used by one thread at a time"), so each process group owns one progress thread that makes
 * every rdt_* call on its communicator after creation:
 *
 *   Python thread                     progress thread (one per process group)
 *   allreduce(t) -> Op -> queue_ ---> issue rdt_i*() in submission order
 *   returns WorkRdt                   rdt_wait/rdt_test until done
 *   work.wait() sleeps on Work::cv_ <- copy outputs back, Work::finish(), Future value or error
 *
 * With nothing pending the thread yields for 50 us (the next operation often follows at once),
 * then sleeps on a condition variable; Work::wait() does the same. While only collectives
 * are pending it blocks in rdt_wait() on the oldest (the engine runs a communicator's
 * collectives in issue order, so the oldest completes first, and rdt_wait polls briefly then
 * sleeps in the transport). While a send or recv is pending it polls every request with
 * rdt_test() instead, so that a later recv is never held back behind an earlier send.
 *
 * Bootstrap: rdt_comm_create_oob() with an allgather over the c10d::Store torch hands in
 * (already prefixed per group by torch): round r, rank i sets "rdmatrain/<r>/<i>" and reads every
 * rank's key; see store_allgather() for when the keys are deleted.
 */
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>
#include <torch/csrc/utils/pybind.h>

#include <ATen/ATen.h>

#include <sched.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <rdmatrain.h>

namespace rdt_torch
{

namespace
{

/* Element type of a reduction; data movement (broadcast, gathers, alltoall, p2p) goes as bytes
 * and so accepts every dtype. */
rdt_dtype_t reduce_dtype(const at::Tensor &t, const char *opname)
{
    switch (t.scalar_type()) {
    case at::kFloat:
        return RDT_FLOAT32;
    case at::kDouble:
        return RDT_FLOAT64;
    case at::kHalf:
        return RDT_FLOAT16;
    case at::kBFloat16:
        return RDT_BFLOAT16;
    case at::kInt:
        return RDT_INT32;
    case at::kLong:
        return RDT_INT64;
    case at::kByte:
        return RDT_UINT8;
    case at::kChar:
        return RDT_INT8;
    default:
        TORCH_CHECK(false, "rdmatrain ", opname, ": dtype ", t.scalar_type(),
                    " is not supported for reductions (float32, float64, float16, bfloat16, "
                    "int32, int64, uint8 and int8 are)");
    }
}

rdt_op_t reduce_op(const c10d::ReduceOp &op, const char *opname)
{
    switch (op.op_) {
    case c10d::ReduceOp::SUM:
        return RDT_SUM;
    case c10d::ReduceOp::AVG:
        return RDT_AVG;
    case c10d::ReduceOp::PRODUCT:
        return RDT_PROD;
    case c10d::ReduceOp::MIN:
        return RDT_MIN;
    case c10d::ReduceOp::MAX:
        return RDT_MAX;
    default:
        TORCH_CHECK(false, "rdmatrain ", opname, ": reduce op ", static_cast<int>(op.op_),
                    " is not supported (SUM, AVG, PRODUCT, MIN and MAX are)");
    }
}

void check_tensor(const at::Tensor &t, const char *opname)
{
    TORCH_CHECK(t.defined(), "rdmatrain ", opname, ": undefined tensor");
    TORCH_CHECK(t.device().is_cpu(), "rdmatrain ", opname,
                ": only CPU tensors are supported, got one on ", t.device());
    TORCH_CHECK(t.layout() == c10::kStrided, "rdmatrain ", opname,
                ": only dense (strided) tensors are supported");
}

const at::Tensor &single(const std::vector<at::Tensor> &tensors, const char *opname)
{
    TORCH_CHECK(tensors.size() == 1, "rdmatrain ", opname,
                ": expects exactly one tensor per call, got ", tensors.size());
    check_tensor(tensors[0], opname);
    return tensors[0];
}

size_t nbytes(const at::Tensor &t)
{
    return static_cast<size_t>(t.numel()) * t.element_size();
}

/* The engine works on contiguous memory: a non-contiguous tensor is used through a contiguous
 * copy, copied back into the tensor on success (for outputs). */
at::Tensor dense(const at::Tensor &t)
{
    return t.is_contiguous() ? t : t.contiguous();
}

} // namespace

class WorkRdt : public c10d::Work
{
  public:
    WorkRdt(int rank, c10d::OpType type, std::vector<at::Tensor> outputs)
        : c10d::Work(rank, type), outputs_(std::move(outputs)),
          future_(c10::make_intrusive<c10::ivalue::Future>(c10::ListType::ofTensors()))
    {
    }

    std::vector<at::Tensor> result() override
    {
        return outputs_;
    }
    c10::intrusive_ptr<c10::ivalue::Future> getFuture() override
    {
        return future_;
    }

    /* A blocking collective is waited for at once: yield the core for a few microseconds
     * before sleeping on the condition variable (waking a sleeping thread costs more). */
    bool wait(std::chrono::milliseconds timeout) override
    {
        auto until = std::chrono::steady_clock::now() + kSpin;
        while (!done_.load(std::memory_order_acquire) && std::chrono::steady_clock::now() < until)
            sched_yield();
        return c10d::Work::wait(timeout);
    }

    /* Called once, on the progress thread. Work first (wait() returns or throws), then the
     * future, whose callbacks (DDP's) run here. */
    void complete(std::exception_ptr error)
    {
        finish(error);
        done_.store(true, std::memory_order_release);
        if (error)
            future_->setError(error);
        else
            future_->markCompleted(c10::IValue(outputs_));
    }

    static constexpr std::chrono::microseconds kSpin{50};

  private:
    std::vector<at::Tensor> outputs_;
    c10::intrusive_ptr<c10::ivalue::Future> future_;
    std::atomic<bool> done_{false};
};

/* One submitted operation. issue() starts it on the engine (progress thread only); done() runs
 * after success (copies out of temporaries). keep holds every buffer the engine may touch, so
 * none is freed before completion even if Python drops its tensors. */
struct Op {
    const char *name;
    bool p2p = false;
    c10::intrusive_ptr<WorkRdt> work;
    std::function<rdt_status_t(rdt_comm_t *, rdt_request_t **)> issue;
    std::function<void()> done;
    std::vector<at::Tensor> keep;
    rdt_request_t *req = nullptr;
};

/* Store-backed allgather for rdt_comm_create_oob. */
struct OobCtx {
    c10::intrusive_ptr<c10d::Store> store;
    int rank = 0;
    int size = 0;
    int round = 0;
    std::string error;

    std::string key(int r, int i) const
    {
        return "rdmatrain/" + std::to_string(r) + "/" + std::to_string(i);
    }
};

/*
 * Round r: set this rank's key, then get every rank's (Store::get waits for a key up to the
 * store's timeout). Once every key of round r is here, every rank has finished reading round
 * r - 1 (a rank writes round r only after that), so this rank deletes its key of round r - 1.
 * The key of the last round is deleted by the constructor after a barrier on the new
 * communicator.
 */
static int store_allgather(const void *send, void *recv, size_t bytes, void *ctx)
{
    auto *o = static_cast<OobCtx *>(ctx);
    try {
        const auto *s = static_cast<const uint8_t *>(send);
        o->store->set(o->key(o->round, o->rank), std::vector<uint8_t>(s, s + bytes));
        for (int i = 0; i < o->size; i++) {
            std::vector<uint8_t> v = o->store->get(o->key(o->round, i));
            if (v.size() != bytes) {
                o->error = "rank " + std::to_string(i) + " sent " + std::to_string(v.size()) +
                           " bytes in bootstrap round " + std::to_string(o->round) + ", expected " +
                           std::to_string(bytes);
                return 1;
            }
            std::memcpy(static_cast<uint8_t *>(recv) + i * bytes, v.data(), bytes);
        }
        if (o->round > 0)
            o->store->deleteKey(o->key(o->round - 1, o->rank));
        o->round++;
        return 0;
    } catch (const std::exception &e) {
        o->error = e.what();
        return 1;
    }
}

class ProcessGroupRdt : public c10d::ProcessGroup
{
  public:
    /* timeout_s: the operations' timeout (rdt_comm_set_timeout); 0 keeps RDT_TIMEOUT's. */
    ProcessGroupRdt(const c10::intrusive_ptr<c10d::Store> &store, int rank, int size,
                    double timeout_s)
        : c10d::ProcessGroup(rank, size)
    {
        OobCtx oob;
        oob.store = store;
        oob.rank = rank;
        oob.size = size;
        rdt_comm_t *comm = nullptr;
        rdt_status_t st;
        {
            /* the other ranks may take a while to arrive: let Python threads run meanwhile */
            pybind11::gil_scoped_release nogil;
            st = rdt_comm_create_oob(rank, size, store_allgather, &oob, &comm);
        }
        if (st != RDT_SUCCESS) {
            /* best effort: what this rank wrote in the round that failed */
            try {
                store->deleteKey(oob.key(oob.round, rank));
            } catch (const std::exception &) {
            }
        }
        TORCH_CHECK(st == RDT_SUCCESS, "rdmatrain: creating the communicator of rank ", rank,
                    " of ", size, " failed: ", rdt_comm_last_error(nullptr),
                    oob.error.empty() ? "" : " (store: ", oob.error, oob.error.empty() ? "" : ")");
        if (timeout_s > 0 && rdt_comm_set_timeout(comm, timeout_s) != RDT_SUCCESS) {
            std::string msg = rdt_comm_last_error(comm);
            rdt_comm_destroy(comm);
            TORCH_CHECK(false, "rdmatrain: timeout of ", timeout_s, " s refused: ", msg);
        }
        {
            pybind11::gil_scoped_release nogil;
            st = rdt_barrier(comm); /* every rank has read the last bootstrap round */
        }
        if (st != RDT_SUCCESS) {
            std::string msg = rdt_comm_last_error(comm);
            rdt_comm_destroy(comm);
            TORCH_CHECK(false, "rdmatrain: barrier after creating the communicator failed: ", msg);
        }
        if (oob.round > 0) {
            try {
                store->deleteKey(oob.key(oob.round - 1, rank));
            } catch (const std::exception &e) {
                TORCH_WARN("rdmatrain: could not delete bootstrap key: ", e.what());
            }
        }
        comm_ = comm;
        thread_ = std::thread(&ProcessGroupRdt::progress_loop, this);
    }

    ~ProcessGroupRdt() override
    {
        {
            std::lock_guard<std::mutex> lk(mu_);
            stop_ = true;
        }
        cv_.notify_one();
        if (thread_.joinable()) {
            /* the thread finishes what is pending, and futures' callbacks may need the GIL */
            if (PyGILState_Check()) {
                pybind11::gil_scoped_release nogil;
                thread_.join();
            } else {
                thread_.join();
            }
        }
        rdt_comm_destroy(comm_);
    }

    const std::string getBackendName() const override
    {
        return "rdmatrain";
    }

    c10::intrusive_ptr<c10d::Work> allreduce(std::vector<at::Tensor> &tensors,
                                             const c10d::AllreduceOptions &opts) override
    {
        const at::Tensor &t = single(tensors, "allreduce");
        rdt_dtype_t dt = reduce_dtype(t, "allreduce");
        rdt_op_t op = reduce_op(opts.reduceOp, "allreduce");
        at::Tensor buf = dense(t);
        auto o = make_op("allreduce", c10d::OpType::ALLREDUCE, {t});
        o->keep = {t, buf};
        size_t n = t.numel();
        void *p = buf.data_ptr();
        o->issue = [=](rdt_comm_t *c, rdt_request_t **r) {
            return rdt_iallreduce(c, p, p, n, dt, op, r);
        };
        o->done = copy_back(t, buf);
        return submit(std::move(o));
    }

    c10::intrusive_ptr<c10d::Work> broadcast(std::vector<at::Tensor> &tensors,
                                             const c10d::BroadcastOptions &opts) override
    {
        const at::Tensor &t = single(tensors, "broadcast");
        check_root(opts.rootRank, "broadcast");
        at::Tensor buf = dense(t);
        auto o = make_op("broadcast", c10d::OpType::BROADCAST, {t});
        o->keep = {t, buf};
        size_t n = nbytes(t);
        void *p = buf.data_ptr();
        int root = static_cast<int>(opts.rootRank);
        o->issue = [=](rdt_comm_t *c, rdt_request_t **r) {
            return rdt_ibroadcast(c, p, p, n, RDT_UINT8, root, r);
        };
        o->done = copy_back(t, buf);
        return submit(std::move(o));
    }

    c10::intrusive_ptr<c10d::Work> reduce(std::vector<at::Tensor> &tensors,
                                          const c10d::ReduceOptions &opts) override
    {
        const at::Tensor &t = single(tensors, "reduce");
        check_root(opts.rootRank, "reduce");
        rdt_dtype_t dt = reduce_dtype(t, "reduce");
        rdt_op_t op = reduce_op(opts.reduceOp, "reduce");
        at::Tensor buf = dense(t);
        auto o = make_op("reduce", c10d::OpType::REDUCE, {t});
        o->keep = {t, buf};
        size_t n = t.numel();
        void *p = buf.data_ptr();
        int root = static_cast<int>(opts.rootRank);
        o->issue = [=](rdt_comm_t *c, rdt_request_t **r) {
            return rdt_ireduce(c, p, p, n, dt, op, root, r);
        };
        if (root == getRank())
            o->done = copy_back(t, buf);
        return submit(std::move(o));
    }

    /* List form: the engine gathers into one flat buffer, copied into the list on completion. */
    c10::intrusive_ptr<c10d::Work> allgather(std::vector<std::vector<at::Tensor>> &outputs,
                                             std::vector<at::Tensor> &inputs,
                                             const c10d::AllgatherOptions &opts) override
    {
        const at::Tensor &in = single(inputs, "allgather");
        TORCH_CHECK(outputs.size() == 1, "rdmatrain allgather: expects one output list, got ",
                    outputs.size());
        std::vector<at::Tensor> outs = outputs[0];
        TORCH_CHECK(outs.size() == static_cast<size_t>(getSize()),
                    "rdmatrain allgather: the output list has ", outs.size(),
                    " tensors, the group has ", getSize(), " ranks");
        for (const at::Tensor &x : outs) {
            check_tensor(x, "allgather");
            TORCH_CHECK(x.numel() == in.numel() && x.scalar_type() == in.scalar_type(),
                        "rdmatrain allgather: every output tensor must have the input's dtype "
                        "and number of elements");
        }
        at::Tensor src = dense(in);
        at::Tensor flat = at::empty({getSize(), in.numel()}, in.options());
        auto o = make_op("allgather", c10d::OpType::ALLGATHER, outs);
        o->keep = {src, flat};
        size_t n = nbytes(in);
        const void *s = src.data_ptr();
        void *d = flat.data_ptr();
        o->issue = [=](rdt_comm_t *c, rdt_request_t **r) {
            return rdt_iallgather(c, s, d, n, RDT_UINT8, r);
        };
        o->done = [outs, flat]() {
            for (size_t i = 0; i < outs.size(); i++)
                outs[i].copy_(flat[static_cast<int64_t>(i)].view(outs[i].sizes()));
        };
        return submit(std::move(o));
    }

    c10::intrusive_ptr<c10d::Work> _allgather_base(at::Tensor &output, at::Tensor &input,
                                                   const c10d::AllgatherOptions &opts) override
    {
        check_tensor(output, "_allgather_base");
        check_tensor(input, "_allgather_base");
        TORCH_CHECK(output.scalar_type() == input.scalar_type(),
                    "rdmatrain _allgather_base: output and input dtypes differ");
        TORCH_CHECK(output.numel() == input.numel() * getSize(),
                    "rdmatrain _allgather_base: the output must have group size (", getSize(),
                    ") times the input's ", input.numel(), " elements, it has ", output.numel());
        at::Tensor src = dense(input);
        at::Tensor dst = dense(output);
        auto o = make_op("_allgather_base", c10d::OpType::_ALLGATHER_BASE, {output});
        o->keep = {output, input, src, dst};
        size_t n = nbytes(input);
        const void *s = src.data_ptr();
        void *d = dst.data_ptr();
        o->issue = [=](rdt_comm_t *c, rdt_request_t **r) {
            return rdt_iallgather(c, s, d, n, RDT_UINT8, r);
        };
        o->done = copy_back(output, dst);
        return submit(std::move(o));
    }

    /* List form: the inputs are packed into one flat buffer at submission. */
    c10::intrusive_ptr<c10d::Work> reduce_scatter(std::vector<at::Tensor> &outputs,
                                                  std::vector<std::vector<at::Tensor>> &inputs,
                                                  const c10d::ReduceScatterOptions &opts) override
    {
        const at::Tensor &out = single(outputs, "reduce_scatter");
        TORCH_CHECK(inputs.size() == 1, "rdmatrain reduce_scatter: expects one input list, got ",
                    inputs.size());
        const std::vector<at::Tensor> &ins = inputs[0];
        TORCH_CHECK(ins.size() == static_cast<size_t>(getSize()),
                    "rdmatrain reduce_scatter: the input list has ", ins.size(),
                    " tensors, the group has ", getSize(), " ranks");
        std::vector<at::Tensor> flat_ins;
        for (const at::Tensor &x : ins) {
            check_tensor(x, "reduce_scatter");
            TORCH_CHECK(x.numel() == out.numel() && x.scalar_type() == out.scalar_type(),
                        "rdmatrain reduce_scatter: every input tensor must have the output's "
                        "dtype and number of elements");
            flat_ins.push_back(x.reshape({-1}));
        }
        rdt_dtype_t dt = reduce_dtype(out, "reduce_scatter");
        rdt_op_t op = reduce_op(opts.reduceOp, "reduce_scatter");
        at::Tensor src = at::cat(flat_ins);
        at::Tensor dst = dense(out);
        auto o = make_op("reduce_scatter", c10d::OpType::REDUCE_SCATTER, {out});
        o->keep = {out, src, dst};
        size_t n = out.numel();
        const void *s = src.data_ptr();
        void *d = dst.data_ptr();
        o->issue = [=](rdt_comm_t *c, rdt_request_t **r) {
            return rdt_ireduce_scatter(c, s, d, n, dt, op, r);
        };
        o->done = copy_back(out, dst);
        return submit(std::move(o));
    }

    c10::intrusive_ptr<c10d::Work>
    _reduce_scatter_base(at::Tensor &output, at::Tensor &input,
                         const c10d::ReduceScatterOptions &opts) override
    {
        check_tensor(output, "_reduce_scatter_base");
        check_tensor(input, "_reduce_scatter_base");
        TORCH_CHECK(output.scalar_type() == input.scalar_type(),
                    "rdmatrain _reduce_scatter_base: output and input dtypes differ");
        TORCH_CHECK(input.numel() == output.numel() * getSize(),
                    "rdmatrain _reduce_scatter_base: the input must have group size (", getSize(),
                    ") times the output's ", output.numel(), " elements, it has ", input.numel());
        rdt_dtype_t dt = reduce_dtype(output, "_reduce_scatter_base");
        rdt_op_t op = reduce_op(opts.reduceOp, "_reduce_scatter_base");
        at::Tensor src = dense(input);
        at::Tensor dst = dense(output);
        auto o = make_op("_reduce_scatter_base", c10d::OpType::_REDUCE_SCATTER_BASE, {output});
        o->keep = {output, input, src, dst};
        size_t n = output.numel();
        const void *s = src.data_ptr();
        void *d = dst.data_ptr();
        o->issue = [=](rdt_comm_t *c, rdt_request_t **r) {
            return rdt_ireduce_scatter(c, s, d, n, dt, op, r);
        };
        o->done = copy_back(output, dst);
        return submit(std::move(o));
    }

    /* Equal splits only: the engine's alltoall moves the same count to every rank. */
    c10::intrusive_ptr<c10d::Work> alltoall_base(at::Tensor &output, at::Tensor &input,
                                                 std::vector<int64_t> &outputSplits,
                                                 std::vector<int64_t> &inputSplits,
                                                 const c10d::AllToAllOptions &opts) override
    {
        check_tensor(output, "alltoall_base");
        check_tensor(input, "alltoall_base");
        TORCH_CHECK(output.scalar_type() == input.scalar_type() && output.numel() == input.numel(),
                    "rdmatrain alltoall_base: output and input must have the same dtype and "
                    "number of elements");
        int64_t size = getSize();
        for (const auto *splits : {&outputSplits, &inputSplits}) {
            if (splits->empty())
                continue;
            TORCH_CHECK(splits->size() == static_cast<size_t>(size),
                        "rdmatrain alltoall_base: ", splits->size(), " split sizes for ", size,
                        " ranks");
            for (int64_t s : *splits)
                TORCH_CHECK(s == (*splits)[0],
                            "rdmatrain alltoall_base: unequal split sizes are not supported "
                            "(the engine's alltoall sends the same count to every rank); "
                            "pass no split sizes or equal ones");
        }
        TORCH_CHECK(input.dim() > 0 && input.size(0) % size == 0 && output.size(0) == input.size(0),
                    "rdmatrain alltoall_base: the first dimension (",
                    input.dim() ? input.size(0) : 0, ") must be divisible by the group size (",
                    size, ")");
        at::Tensor src = dense(input);
        at::Tensor dst = dense(output);
        auto o = make_op("alltoall_base", c10d::OpType::ALLTOALL_BASE, {output});
        o->keep = {output, input, src, dst};
        size_t n = nbytes(input) / size;
        const void *s = src.data_ptr();
        void *d = dst.data_ptr();
        o->issue = [=](rdt_comm_t *c, rdt_request_t **r) {
            return rdt_ialltoall(c, s, d, n, RDT_UINT8, r);
        };
        o->done = copy_back(output, dst);
        return submit(std::move(o));
    }

    c10::intrusive_ptr<c10d::Work> barrier(const c10d::BarrierOptions &opts) override
    {
        auto o = make_op("barrier", c10d::OpType::BARRIER, {});
        o->issue = [](rdt_comm_t *c, rdt_request_t **r) { return rdt_ibarrier(c, r); };
        return submit(std::move(o));
    }

    /* The engine matches messages between two ranks in issue order and has no tags. */
    c10::intrusive_ptr<c10d::Work> send(std::vector<at::Tensor> &tensors, int dst, int tag) override
    {
        const at::Tensor &t = single(tensors, "send");
        check_peer(dst, tag, "send");
        at::Tensor buf = dense(t);
        auto o = make_op("send", c10d::OpType::SEND, {t});
        o->p2p = true;
        o->keep = {t, buf};
        size_t n = nbytes(t);
        const void *p = buf.data_ptr();
        o->issue = [=](rdt_comm_t *c, rdt_request_t **r) {
            return rdt_isend(c, p, n, RDT_UINT8, dst, r);
        };
        return submit(std::move(o));
    }

    c10::intrusive_ptr<c10d::Work> recv(std::vector<at::Tensor> &tensors, int src, int tag) override
    {
        const at::Tensor &t = single(tensors, "recv");
        check_peer(src, tag, "recv");
        at::Tensor buf = dense(t);
        auto o = make_op("recv", c10d::OpType::RECV, {t});
        o->p2p = true;
        o->keep = {t, buf};
        size_t n = nbytes(t);
        void *p = buf.data_ptr();
        o->issue = [=](rdt_comm_t *c, rdt_request_t **r) {
            return rdt_irecv(c, p, n, RDT_UINT8, src, r);
        };
        o->done = copy_back(t, buf);
        return submit(std::move(o));
    }

    c10::intrusive_ptr<c10d::Work> recvAnysource(std::vector<at::Tensor> &tensors, int tag) override
    {
        TORCH_CHECK(false, "rdmatrain recv: a source rank is required (the engine has no "
                           "receive from any source)");
    }

  private:
    void check_root(int64_t root, const char *opname) const
    {
        TORCH_CHECK(root >= 0 && root < getSize(), "rdmatrain ", opname, ": root ", root,
                    " is not a rank of this group of ", getSize());
    }

    void check_peer(int peer, int tag, const char *opname) const
    {
        TORCH_CHECK(peer >= 0 && peer < getSize() && peer != getRank(), "rdmatrain ", opname,
                    ": peer ", peer, " is not another rank of this group of ", getSize());
        TORCH_CHECK(tag == 0, "rdmatrain ", opname, ": tag ", tag,
                    " is not supported; the engine has no tags and matches messages between "
                    "two ranks in the order they were issued: use tag 0");
    }

    static std::function<void()> copy_back(const at::Tensor &t, const at::Tensor &buf)
    {
        if (t.is_same(buf))
            return nullptr;
        return [t, buf]() mutable { t.copy_(buf); };
    }

    std::unique_ptr<Op> make_op(const char *name, c10d::OpType type,
                                std::vector<at::Tensor> outputs)
    {
        auto o = std::make_unique<Op>();
        o->name = name;
        o->work = c10::make_intrusive<WorkRdt>(getRank(), type, std::move(outputs));
        return o;
    }

    c10::intrusive_ptr<c10d::Work> submit(std::unique_ptr<Op> o)
    {
        c10::intrusive_ptr<c10d::Work> w = o->work;
        {
            std::lock_guard<std::mutex> lk(mu_);
            queue_.push_back(std::move(o));
            queued_.store(true, std::memory_order_release);
        }
        cv_.notify_one();
        return w;
    }

    /* Progress thread only. */
    void complete(Op &o, rdt_status_t st)
    {
        std::exception_ptr error;
        if (st == RDT_SUCCESS) {
            try {
                if (o.done)
                    o.done();
            } catch (...) {
                error = std::current_exception();
            }
        } else {
            std::string msg = std::string("rdmatrain ") + o.name + " failed on rank " +
                              std::to_string(getRank()) + " of " + std::to_string(getSize()) +
                              ": " + rdt_status_str(st) + ": " + rdt_comm_last_error(comm_);
            error = std::make_exception_ptr(std::runtime_error(msg));
        }
        o.keep.clear();
        o.work->complete(error);
    }

    void progress_loop()
    {
        std::deque<std::unique_ptr<Op>> pending; /* issued, in issue order */
        unsigned idle = 0;

        for (;;) {
            std::deque<std::unique_ptr<Op>> fresh;
            if (pending.empty()) {
                /* the next operation often follows at once: yield briefly before sleeping */
                auto until = std::chrono::steady_clock::now() + WorkRdt::kSpin;
                while (!queued_.load(std::memory_order_acquire) &&
                       std::chrono::steady_clock::now() < until)
                    sched_yield();
            }
            {
                std::unique_lock<std::mutex> lk(mu_);
                if (pending.empty())
                    cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
                queued_.store(false, std::memory_order_relaxed);
                if (stop_ && queue_.empty() && pending.empty())
                    return;
                fresh.swap(queue_);
            }
            for (auto &o : fresh) {
                rdt_status_t st = o->issue(comm_, &o->req);
                if (st != RDT_SUCCESS)
                    complete(*o, st);
                else
                    pending.push_back(std::move(o));
            }
            if (pending.empty())
                continue;

            bool p2p = false;
            for (auto &o : pending)
                p2p = p2p || o->p2p;
            if (!p2p) {
                /* collectives complete in issue order: sleep in the engine on the oldest */
                rdt_status_t st = rdt_wait(pending.front()->req);
                complete(*pending.front(), st);
                pending.pop_front();
                idle = 0;
                continue;
            }
            bool progressed = false;
            for (auto it = pending.begin(); it != pending.end();) {
                int done = 0;
                rdt_status_t st = rdt_test((*it)->req, &done);
                if (done || st != RDT_SUCCESS) {
                    complete(**it, st);
                    it = pending.erase(it);
                    progressed = true;
                } else {
                    ++it;
                }
            }
            if (progressed) {
                idle = 0;
            } else if (++idle < 256) {
                sched_yield();
            } else {
                std::this_thread::sleep_for(std::chrono::microseconds(50));
            }
        }
    }

    rdt_comm_t *comm_ = nullptr;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::unique_ptr<Op>> queue_; /* submitted, not yet issued */
    bool stop_ = false;
    std::atomic<bool> queued_{false}; /* queue_ is not empty: read without mu_ while spinning */
    std::thread thread_;
};

/* Called by the creator rdmatrain_torch registers (its __init__.py decides timeout_s). */
static c10::intrusive_ptr<c10d::ProcessGroup>
create_process_group(const c10::intrusive_ptr<c10d::Store> &store, int rank, int size,
                     double timeout_s)
{
    return c10::make_intrusive<ProcessGroupRdt>(store, rank, size, timeout_s);
}

} // namespace rdt_torch

PYBIND11_MODULE(_rdmatrain_torch, m)
{
    m.doc() = "rdmatrain collective engine as a torch.distributed backend";
    m.def("create_process_group", &rdt_torch::create_process_group, pybind11::arg("store"),
          pybind11::arg("rank"), pybind11::arg("size"), pybind11::arg("timeout_s"),
          "Create a ProcessGroup on rdmatrain; timeout_s > 0 sets its operations' timeout in "
          "seconds, 0 keeps RDT_TIMEOUT's.");
}
