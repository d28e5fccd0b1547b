"""Training: skip-gram negative sampling on column-sharded embedding tables, one Ray Train worker per shard.

    plan.py         checks the run directory and the settings before any work starts; what every worker needs
    data.py         this worker's share of pairs/, in a new order each epoch, read ahead on a thread
    sharding.py     which columns each worker owns, and the collectives of a step (no-ops for one worker)
    model.py        the shard of both tables, the noise sampler, the SGNS step (torch on any device)
    cpu_kernels.py  the same step compiled with numba for CPUs
    checkpoints.py  shard files, re-sharding on load, the checkpoint store of a run without Ray
    loop.py         train_loop_per_worker: the training loop, runnable without Ray
    output.py       vectors/ from the last checkpoint, and the stage's commit
    launcher.py     `w2vdist train`: Ray, TorchTrainer, resources, failures
"""
