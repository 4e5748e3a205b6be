# Plan.run binds inputs and outputs to the caller's arrays instead of copying (zero-copy runs):
# which tensors may be bound, worked out once a plan is built, and re-pointing them per run.
# Included at the end of _core.pyx (the functions read Plan's members).


cdef inline void _bind(ggml_tensor * t, vector[ggml_tensor *] & views, void * data) noexcept nogil:
    """Point ``t`` and its ``views`` (ggml keeps a view's address, not its source's) at ``data``."""
    cdef size_t j
    t.data = data
    for j in range(views.size()):
        views[j].data = <char *> data + views[j].view_offs


cdef _plan_direct_io(Plan self):
    """Which inputs and outputs a run binds to its arrays instead of copying (see the members)."""
    cdef int i, k, j
    cdef int n_nodes = ggml_graph_n_nodes(self.graph)
    cdef ggml_tensor * node
    cdef ggml_tensor * t
    cdef bint ok
    self.input_direct.assign(self.inputs.size(), False)
    self.output_direct.assign(self.outputs.size(), False)
    self.input_home.assign(self.inputs.size(), NULL)
    self.output_home.assign(self.outputs.size(), NULL)
    self.input_views.resize(self.inputs.size())
    self.output_views.resize(self.outputs.size())
    for k in range(<int> self.inputs.size()):
        t = self.inputs[k]
        self.input_home[k] = t.data
        ok = self.input_bytes[k] > 0 and t.view_src == NULL
        for i in range(n_nodes):
            node = ggml_graph_node(self.graph, i)
            if ok and node.view_src == t:
                # a node with an input as view_src but a computing op writes into the input
                ok = _is_view(node) and node.op != GGML_OP_NONE
                self.input_views[k].push_back(node)
        for j in range(<int> self.outputs.size()):
            ok = ok and self.outputs[j] != t
        self.input_direct[k] = ok
    for k in range(<int> self.outputs.size()):
        t = self.outputs[k]
        self.output_home[k] = t.data
        ok = t.op != 0 and t.view_src == NULL and t.data != NULL  # computed by a node, not a leaf or view
        for j in range(k):
            ok = ok and self.outputs[j] != t
        self.output_direct[k] = ok
        if ok:
            for i in range(n_nodes):
                node = ggml_graph_node(self.graph, i)
                if node.view_src == t:
                    self.output_views[k].push_back(node)


cdef void _bind_outputs(Plan self, vector[void *] & ptrs) noexcept nogil:
    """Point each direct output (and the views of it) at ``ptrs[k]``."""
    cdef size_t k
    for k in range(self.outputs.size()):
        if self.output_direct[k]:
            _bind(self.outputs[k], self.output_views[k], ptrs[k])
