/** Rows one tick carries at most: the scheduler fills ticks up to it, workers warm up at it. */
/*
 * 256 rows × 49 tokens ≈ 12.5k tokens per forward. Measured (bench:runtime, 2 workers, 80
 * requests at 40/s, two runs each): 128 rows 7.35/7.36 req/s (p50 7.2/7.0 s, p99 9.1/8.9
 * s), 256 rows 7.90/7.82 (7.6/7.7 s, 8.3/8.7 s). A 2-worker tick costs 6.0 ms per image
 * at 64 images and 5.2 at 128. (Before the data-plane work, 256 gained nothing over 128:
 * 5.13 vs 5.12 req/s.) A light load never fills a tick, so it is not slowed.
 */
export const DEFAULT_MAX_TICK_ROWS = 256;
