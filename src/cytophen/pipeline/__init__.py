"""cytophen.pipeline: batch gating (inputs, executors, atomic outputs, resume).

The entry point is :func:`cytophen.gate_files` (= :func:`cytophen.pipeline.batch.gate_files`);
``cytophen gate`` is a thin CLI over it. See docs/batch.md.
"""
