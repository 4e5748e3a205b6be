# Plan.run binds inputs and outputs to the caller's arrays instead of copying (zero-copy runs):
# which tensors may be bound, worked out once a plan is built, and re-pointing them per run.
# Included at the end of _core.pyx (the functions read Plan's members).


cdef inline void _bind(ggml_tensor * t, vector[ggml_tensor *] & views, void * data) noexcept nogil:
    """Point ``t`` and its ``views`` (ggml keeps a view's address, not its source's) at ``data``."""
    cdef size_t j
    t.data = data
    for j in range(views.size()):
        views[j].data = <char *> data + views[j].view_offs


cdef inline bint _reshaped_node(ggml_tensor * t) noexcept nogil:
    """Whether ``t`` is reshapes, and only reshapes, of a whole, contiguous tensor a node
    computes (not a leaf: an input, weight or constant must not become an output's memory): a
    present KV cache is the reshape of a concatenation, which ggml_cont copied once more every
    token. The chain must end at the memory's owner itself: a node written in place into it (a
    channel slice of a concatenation) holds the values, and the owner alone would leave it out."""
    cdef ggml_tensor * src = t.view_src
    cdef ggml_tensor * s = t
    if t.op != GGML_OP_RESHAPE or src == NULL:
        return False
    while s != NULL and s.op == GGML_OP_RESHAPE:
        s = s.src[0]
    return (s == src and t.view_offs == 0 and src.op != GGML_OP_NONE and not _is_view(src)
            and src.type == t.type and ggml_is_contiguous(src) and ggml_nbytes(src) == ggml_nbytes(t))


ctypedef ggml_tensor * tensor_ptr


cdef _plan_direct_io(Plan self):
    """Which inputs and outputs a run binds to its arrays instead of copying (see the members)."""
    cdef int i, k, j
    cdef int n_nodes = ggml_graph_n_nodes(self.graph)
    cdef ggml_tensor ** nodes = ggml_graph_nodes(self.graph)
    cdef ggml_tensor * node
    cdef ggml_tensor * t
    cdef bint ok
    cdef unordered_map[tensor_ptr, int] input_of, output_of  # tensor -> its index
    cdef unordered_map[tensor_ptr, int].iterator it
    self.input_direct.assign(self.inputs.size(), False)
    self.output_direct.assign(self.outputs.size(), False)
    self.input_home.assign(self.inputs.size(), NULL)
    self.output_home.assign(self.outputs.size(), NULL)
    self.input_views.clear()
    self.output_views.clear()
    self.input_views.resize(self.inputs.size())
    self.output_views.resize(self.outputs.size())
    for k in range(<int> self.inputs.size()):
        t = self.inputs[k]
        self.input_home[k] = t.data
        self.input_direct[k] = self.input_bytes[k] > 0 and t.view_src == NULL
        for j in range(<int> self.outputs.size()):
            if self.outputs[j] == t:
                self.input_direct[k] = False
        if input_of.count(t):  # fed twice: bound once would leave the other's views behind
            self.input_direct[k] = False
        else:
            input_of[t] = k
    for k in range(<int> self.outputs.size()):
        t = self.outputs[k]
        self.output_home[k] = t.data
        ok = t.op != 0 and t.view_src == NULL and t.data != NULL  # computed by a node, not a leaf or view
        for j in range(k):
            ok = ok and self.outputs[j] != t
        self.output_direct[k] = ok
        if ok:
            output_of[t] = k
    # one pass over the nodes: the views of each input and direct output (ggml keeps a view's
    # own address, so binding a tensor re-points them too)
    for i in range(n_nodes):
        node = nodes[i]
        if node.view_src == NULL:
            continue
        it = input_of.find(node.view_src)
        if it != input_of.end():
            k = deref(it).second
            if self.input_direct[k]:
                # a node with an input as view_src but a computing op writes into the input
                self.input_direct[k] = _is_view(node) and node.op != GGML_OP_NONE
                self.input_views[k].push_back(node)
        it = output_of.find(node.view_src)
        if it != output_of.end():
            self.output_views[deref(it).second].push_back(node)


cdef void _bind_outputs(Plan self, vector[void *] & ptrs) noexcept nogil:
    """Point each direct output (and the views of it) at ``ptrs[k]``."""
    cdef size_t k
    for k in range(self.outputs.size()):
        if self.output_direct[k]:
            _bind(self.outputs[k], self.output_views[k], ptrs[k])
