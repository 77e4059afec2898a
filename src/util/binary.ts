// A growable byte writer and a bounds-checked reader for MetaStore's own binary encodings
// (log entries, records). Integers that MetaStore keeps as `number` are written as 64-bit
// values and asserted to be safe integers when read back; 64-bit IDs travel as bigint.

import { assert, assertSafeInteger } from './assert.js';

export class ByteWriter {
  private buffer: Buffer;
  private offset = 0;

  constructor(initialBytes = 256) {
    this.buffer = Buffer.allocUnsafe(initialBytes);
  }

  private reserve(bytes: number): void {
    if (this.offset + bytes <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < this.offset + bytes) size *= 2;
    const grown = Buffer.allocUnsafe(size);
    this.buffer.copy(grown, 0, 0, this.offset);
    this.buffer = grown;
  }

  /** Leaves `bytes` unwritten (room the caller fills in later). */
  skip(bytes: number): this {
    this.reserve(bytes);
    this.offset += bytes;
    return this;
  }

  u8(value: number): this {
    this.reserve(1);
    this.buffer[this.offset++] = value;
    return this;
  }

  bool(value: boolean): this {
    return this.u8(value ? 1 : 0);
  }

  u32(value: number): this {
    this.reserve(4);
    this.buffer.writeUInt32BE(value, this.offset);
    this.offset += 4;
    return this;
  }

  /** A signed safe integer as a 64-bit big-endian value. */
  int(value: number): this {
    assertSafeInteger(value, 'encoded integer');
    this.reserve(8);
    this.buffer.writeBigInt64BE(BigInt(value), this.offset);
    this.offset += 8;
    return this;
  }

  /** A 64-bit ID (lease, member); stored as unsigned, so IDs above 2^63 survive. */
  id(value: bigint): this {
    this.reserve(8);
    this.buffer.writeBigUInt64BE(BigInt.asUintN(64, value), this.offset);
    this.offset += 8;
    return this;
  }

  /** A signed 64-bit ID (etcd's lease IDs are int64). */
  signedId(value: bigint): this {
    this.reserve(8);
    this.buffer.writeBigInt64BE(BigInt.asIntN(64, value), this.offset);
    this.offset += 8;
    return this;
  }

  bytes(value: Uint8Array): this {
    this.u32(value.length);
    this.reserve(value.length);
    this.buffer.set(value, this.offset);
    this.offset += value.length;
    return this;
  }

  finish(): Buffer {
    return this.buffer.subarray(0, this.offset);
  }
}

export class ByteReader {
  private offset = 0;

  constructor(private readonly buffer: Buffer) {}

  private need(bytes: number): void {
    assert(this.offset + bytes <= this.buffer.length, `truncated encoding: need ${bytes} bytes at ${this.offset}`);
  }

  u8(): number {
    this.need(1);
    return this.buffer[this.offset++]!;
  }

  bool(): boolean {
    return this.u8() !== 0;
  }

  u32(): number {
    this.need(4);
    const value = this.buffer.readUInt32BE(this.offset);
    this.offset += 4;
    return value;
  }

  int(): number {
    this.need(8);
    const value = Number(this.buffer.readBigInt64BE(this.offset));
    this.offset += 8;
    assertSafeInteger(value, 'decoded integer');
    return value;
  }

  id(): bigint {
    this.need(8);
    const value = this.buffer.readBigUInt64BE(this.offset);
    this.offset += 8;
    return value;
  }

  signedId(): bigint {
    this.need(8);
    const value = this.buffer.readBigInt64BE(this.offset);
    this.offset += 8;
    return value;
  }

  /** A length-prefixed byte string; a view into the source buffer, not a copy. */
  bytes(): Buffer {
    const length = this.u32();
    this.need(length);
    const value = this.buffer.subarray(this.offset, this.offset + length);
    this.offset += length;
    return value;
  }

  get done(): boolean {
    return this.offset === this.buffer.length;
  }
}
