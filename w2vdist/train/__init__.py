"""Training: skip-gram negative sampling on column-sharded embedding tables, one Ray Train worker per shard.

    plan.py         checks the run directory and the settings before any work starts; what every worker needs
    corpus_stream.py  pair_source=corpus: each epoch's pairs generated from corpus/ on the device, read ahead
    data.py         pair_source=pairs: this worker's share of pairs/, in a new order each epoch, read ahead
    random_streams.py  counter-based random draws (negatives, windows), the same in torch and numba
    sharding.py     which columns each worker owns, and the collectives of a step (no-ops for one worker)
    model.py        the shard of both tables, the noise sampler, the SGNS step (torch on any device)
    cpu_kernels.py  the same step and the noise draws compiled with numba for CPUs
    checkpoints.py  shard files, re-sharding on load, the checkpoint store of a run without Ray
    loop.py         train_loop_per_worker: the training loop, runnable without Ray
    stage.py        the stage's folders, vectors/ from the last checkpoint, and the commit
    launcher.py     `w2vdist train`: Ray, TorchTrainer, resources, failures
"""
