"""Training: word2vec's skip-gram with negative sampling, one window at a time, on data-parallel replicas (each
on one worker, or on column_shards workers holding a slice of the tables' columns each).

    types.py            the typed records crossing module and process boundaries (TrainSettings, launches)
    plan.py             checks the run directory and the settings before any work starts; what every worker needs
    blocks.py           an epoch's blocks, each replica's share, reading ahead
    corpus_windows.py   a block of chunks to a kernel launch: this epoch's subsampling
    noise.py            the count^0.75 noise distribution as an alias table
    sgns_reference.py   the update rule in plain torch: the specification, and the fallback
    sgns_numba.py       the rule compiled for CPUs: threads over the parts of a launch, lock-free
    sgns_triton.py      the rule for CUDA GPUs: one program per part, atomic adds
    sgns_sharded.py     the synchronous step of column shards: batches of centers on a slice of the columns
    engine.py           a worker's tables (whole, or its columns) and the kernel choice
    replicas.py         every collective: replicas x column shards, the tables' sync, the shards' sums
    stretch.py          the stretched update's arithmetic: one update reaching as far as R copies (sync_rule=stretched)
    agreement.py        the agreement rule's arithmetic: several changes of a row made one (sync, sharded step)
    sync_numba.py       the sync's arithmetic compiled for CPU tables
    loop.py             train_loop_per_worker: the training loop
    checkpoints.py      checkpoint folders (verified by checksum), the store of a run without Ray
    stage.py            the stage's folders, completeness, vectors/ and the commit
    launcher.py         `w2vdist train`: Ray, TorchTrainer, resources, failures
    local.py            the same loop without Ray
"""
