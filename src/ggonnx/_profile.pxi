# Profiling a Plan: ggml's scheduler calls back after each node (the eval callback), so every
# node runs as its own graph and its end time is logged with the instruction row it came from
# (a node built for row i is named "#i"; nodes ggml adds itself are logged as row -1).
cdef extern from *:
    """
    #include <stdlib.h>
    #include <time.h>
    #include <vector>
    struct ggonnx_profile {
        std::vector<int64_t> end_ns;
        std::vector<int> rows;
        std::vector<const char *> ops;
        int64_t marks[3];  // before the input copies, before compute, after the output copies
    };
    static inline int64_t ggonnx_now_ns(void) {  // CLOCK_MONOTONIC: Python's time.monotonic_ns
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000000000LL + ts.tv_nsec;
    }
    static bool ggonnx_profile_node(struct ggml_tensor * t, bool ask, void * user_data) {
        if (ask) return true;  // observe every node
        ggonnx_profile * p = (ggonnx_profile *) user_data;
        p->end_ns.push_back(ggonnx_now_ns());
        p->rows.push_back(t->name[0] == '#' ? atoi(t->name + 1) : -1);
        p->ops.push_back(ggml_op_desc(t));
        return true;
    }
    static ggonnx_profile * ggonnx_profile_new(void) { return new ggonnx_profile(); }
    static void ggonnx_profile_free(ggonnx_profile * p) { delete p; }
    static void ggonnx_profile_clear(ggonnx_profile * p) { p->end_ns.clear(); p->rows.clear(); p->ops.clear(); }
    """
    cppclass ggonnx_profile:
        vector[int64_t] end_ns
        vector[int] rows
        vector[const char *] ops
        int64_t marks[3]
    int64_t ggonnx_now_ns() noexcept nogil
    bint ggonnx_profile_node(ggml_tensor * t, bint ask, void * user_data) noexcept nogil
    ggonnx_profile * ggonnx_profile_new()
    void ggonnx_profile_free(ggonnx_profile * p)
    void ggonnx_profile_clear(ggonnx_profile * p) noexcept nogil


cdef object _profile_records(ggonnx_profile * p):
    """(t_start, t_compute, t_end, [(row, ggml op, end ns), ...]) of the last profiled run."""
    nodes = [(p.rows[k], p.ops[k].decode(), p.end_ns[k]) for k in range(<Py_ssize_t> p.rows.size())]
    return p.marks[0], p.marks[1], p.marks[2], nodes
