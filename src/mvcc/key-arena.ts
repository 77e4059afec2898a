// Copies of index keys, packed into slabs that hold nothing but keys.
//
// Why: the store keeps one Buffer per key for as long as the key is indexed. A Buffer.from()
// copy would come from Node's shared 8 KiB pool, so one long-lived key could pin a slab full of
// short-lived network buffers; a separate ArrayBuffer per key costs more than a short key
// itself. Keys change rarely (only creation allocates), so packing them into dedicated slabs
// wastes little, and only when keys are deleted and compacted away.
//
// Invariant: a returned Buffer never overlaps another and is never written after the copy.

const SLAB_BYTES = 64 * 1024;
/** Keys at least this large get their own allocation instead of a slab slice. */
const OWN_ALLOCATION_BYTES = 2 * 1024;

export class KeyArena {
  private slab: Buffer = Buffer.allocUnsafeSlow(SLAB_BYTES);
  private used = 0;

  copy(key: Buffer): Buffer {
    const n = key.length;
    if (n >= OWN_ALLOCATION_BYTES) {
      const own = Buffer.allocUnsafeSlow(n);
      own.set(key);
      return own;
    }
    if (this.used + n > SLAB_BYTES) {
      this.slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
      this.used = 0;
    }
    const start = this.used;
    this.slab.set(key, start);
    this.used = start + n;
    return this.slab.subarray(start, start + n);
  }
}
