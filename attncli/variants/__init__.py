"""Torch modules built from specs. Importing this package imports torch: keep it off analytic paths.

Every variant module has the same interface:
  forward(x, math=False) -> (y, cache)      prefill a whole sequence; the cache holds its K/V
  allocate_cache(batch, capacity) -> Cache  an empty cache for `capacity` tokens
  fill_cache(cache, x)                      write a prefix's K/V into the cache (decode set-up)
  step(x, cache, pos, math=False) -> y      decode one token at position `pos` (writes cache[pos])
`math=True` runs the plain-math path (explicit scores, mask, softmax, weighted sum), the reference.

A module whose keys/values come from outside the sequence (cross-attention) also has
  memory_len: int                           tokens of encoder memory it needs (absent or 0: none)
  set_memory(memory)                        the (batch, memory_len, d_model) memory, before any call
`measure_row` draws that memory from the seed like the input and hands it to the module and to its
float64 twin. A recurrent cache (linear attention's state) advances on every `step`, so a caller
that repeats a step (the timing loop) refills the cache with `fill_cache` before reading outputs.
"""
