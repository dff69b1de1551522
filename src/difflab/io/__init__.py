"""Files in and out: pickle-free safetensors+JSON checkpoints (`difflab.io.checkpoint`), images."""
