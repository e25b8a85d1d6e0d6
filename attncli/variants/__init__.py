"""Torch modules built from specs. Importing this package imports torch: keep it off analytic paths.

Every variant module has the same interface:
  forward(x, math=False) -> (y, cache)      prefill a whole sequence; the cache holds its K/V
  allocate_cache(batch, capacity) -> Cache  an empty cache for `capacity` tokens
  fill_cache(cache, x)                      write a prefix's K/V into the cache (decode set-up)
  step(x, cache, pos, math=False) -> y      decode one token at position `pos` (writes cache[pos])
`math=True` runs the plain-math path (explicit scores, mask, softmax, weighted sum), the reference.
"""
