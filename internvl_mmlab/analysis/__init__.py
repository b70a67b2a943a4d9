"""The task-independent half of the analysis tools: FLOPs and parameters of any config (``flops``) and
the dataset check's report and walk over a config's datasets (``data_check``); the task packages add
their halves (``mmseg_custom.analysis``, ``mmdet_custom.analysis``)."""
