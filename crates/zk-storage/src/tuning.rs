//! RocksDB options for the state store: it is read at random, so it gets a block cache and bloom
//! filters. RocksDB's own info log stays small: it is a diagnostics file, not data.

use rocksdb::{BlockBasedOptions, Cache, DBCompressionType, Options};

/// Options for the whole DB (not per column family).
pub(crate) fn db_options() -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    // Two cores are the target machine: one flush and one compaction at a time.
    opts.set_max_background_jobs(2);
    opts.set_keep_log_file_num(4);
    opts.set_max_log_file_size(8 << 20);
    opts
}

/// Options for the state store's DB: apply writes without the WAL, so the column families
/// must reach disk together (a flush of one without the others would leave `meta`'s
/// `last_applied` describing nodes that are not there).
pub(crate) fn state_db_options() -> Options {
    let mut opts = db_options();
    opts.set_atomic_flush(true);
    opts
}

/// Options for a column family of the state store, sharing one block cache: bloom filters
/// make `exists` on a missing node cheap, cached index and filter blocks keep reads at one I/O.
pub(crate) fn state_cf_options(cache: &Cache, write_buffer: usize) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_bloom_filter(10.0, false);
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    let mut opts = Options::default();
    opts.set_block_based_table_factory(&table);
    opts.set_write_buffer_size(write_buffer);
    opts.set_compression_type(DBCompressionType::Lz4);
    opts
}
