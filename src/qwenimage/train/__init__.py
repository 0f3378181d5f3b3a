"""Training: flow matching on T2I / TI2I / I2I, curriculum stages, LoRA, DPO, DDP and FSDP2 with exact resume."""
