/**
 * Requests hold their writes flat (replica/messages.ts WriteBatch): what a codec decodes and what
 * a client builds in place must be the same writes, the same body and the same store effect as a
 * request built from write objects (paper §5: every replica executes every write of the batch).
 */
import { describe, expect, it } from 'vitest';
import { createCrypto } from './crypto.js';
import { KeyRing } from './keys.js';
import { makeRequest, makeRequestInPlace, readRequest, WriteBatch, type Write } from './messages.js';
import { YcsbStore } from './store.js';
import { Reader, Writer } from './wire.js';
import { writeRequest } from './messages.js';

const ring = new KeyRing(createCrypto('sim'), 'write-batch', 4, 1);
const signer = ring.clientSigner(0);

function decoded(writes: readonly Write[]): WriteBatch {
  const w = new Writer();
  writeRequest(w, makeRequest(signer, 0, 7, 3, writes));
  const req = readRequest(new Reader(w.finish()));
  expect(req.writes).toBeInstanceOf(WriteBatch);
  return req.writes as WriteBatch;
}

function objectWrites(count: number, valueBytes: (i: number) => number): Write[] {
  return Array.from({ length: count }, (_, i) => ({ key: (i * 7919 + 13) % 1000, value: Buffer.alloc(valueBytes(i), (i * 31 + 5) & 0xff) }));
}

describe('WriteBatch', () => {
  it('decodes to the same keys and values as the writes encoded, for equal and for mixed value lengths', () => {
    for (const lengths of [() => 64, (i: number) => (i * 13) % 70, () => 0]) {
      const writes = objectWrites(25, lengths);
      const flat = decoded(writes);
      expect(flat.length).toBe(writes.length);
      for (let i = 0; i < writes.length; i++) {
        expect(flat.keyAt(i)).toBe(writes[i]!.key);
        expect(flat.valueLengthAt(i)).toBe(writes[i]!.value.length);
        expect(flat.write(i).value.equals(writes[i]!.value)).toBe(true);
      }
      expect(JSON.parse(JSON.stringify(flat))).toEqual(JSON.parse(JSON.stringify(writes)));
    }
  });

  it('makeRequestInPlace builds byte for byte the body makeRequest encodes from the same writes', () => {
    const writes = objectWrites(100, () => 64);
    const want = makeRequest(signer, 3, 11, 42, writes);
    const got = makeRequestInPlace(signer, 3, 11, 42, writes.length, 64, (i, body, at) => {
      writes[i]!.value.copy(body, at);
      return writes[i]!.key;
    });
    expect(got.body.equals(want.body)).toBe(true);
    expect(got.signature.equals(want.signature)).toBe(true);
    expect(got.writes.length).toBe(100);
    expect(JSON.parse(JSON.stringify(got.writes))).toEqual(JSON.parse(JSON.stringify(writes)));
  });
});

describe('YcsbStore with flat writes', () => {
  it('applies, validates and rolls back flat writes exactly as write objects (short values zero-padded, long ones truncated)', () => {
    // Uniform lengths of whole words take YcsbStore's uniform path (applyUniform): equal to the
    // record, shorter (zero-padded) and longer (truncated); mixed lengths and 10-byte records the general one.
    for (const valueBytes of [64, 16, 10]) {
      for (const lengths of [() => valueBytes, () => valueBytes - 8, () => valueBytes + 4, (i: number) => (i * 7) % (valueBytes + 9)]) {
        const writes = objectWrites(60, lengths);
        const a = new YcsbStore(1000, valueBytes);
        const b = new YcsbStore(1000, valueBytes);
        a.apply(
          1,
          objectWrites(60, () => valueBytes),
          true,
        );
        b.apply(
          1,
          objectWrites(60, () => valueBytes),
          true,
        );
        a.apply(2, writes, true);
        b.apply(2, decoded(writes), true);
        for (let key = 0; key < 1000; key++) expect(b.read(key).equals(a.read(key)), `key ${key}, value ${valueBytes} B`).toBe(true);
        a.rollbackTo(1);
        b.rollbackTo(1);
        for (let key = 0; key < 1000; key++) expect(b.read(key).equals(a.read(key)), `key ${key} after rollback`).toBe(true);
        expect(b.writesApplied).toBe(a.writesApplied);
      }
    }
  });

  it('rolls back a flat batch that writes one key several times to the value before the batch (paper §3.3.5)', () => {
    // The uniform path saves each row's old value as it overwrites it: a key written again
    // later in the batch must be restored to what it held before the whole batch, not between.
    for (const valueBytes of [64, 16]) {
      const before = objectWrites(20, () => valueBytes).map((x, i) => ({ key: i % 5, value: x.value }));
      const batch = objectWrites(30, () => valueBytes - 8).map((x, i) => ({ key: (i * 3) % 5, value: x.value }));
      const a = new YcsbStore(5, valueBytes);
      const b = new YcsbStore(5, valueBytes);
      const c = new YcsbStore(5, valueBytes);
      for (const s of [a, b, c]) s.apply(1, decoded(before), true);
      const saved = Array.from({ length: 5 }, (_, key) => Buffer.from(b.read(key)));
      a.apply(2, batch, true);
      b.apply(2, decoded(batch), true);
      c.apply(2, decoded(batch), false);
      for (let key = 0; key < 5; key++) {
        expect(b.read(key).equals(a.read(key)), `key ${key}, value ${valueBytes} B`).toBe(true);
        expect(c.read(key).equals(a.read(key)), `key ${key}, not undoable`).toBe(true);
      }
      expect(b.rollbackTo(1)).toBe(1);
      for (let key = 0; key < 5; key++) expect(b.read(key).equals(saved[key]!), `key ${key} after rollback`).toBe(true);
    }
  });

  it('rejects a flat batch naming a key outside the table, and applies none of it', () => {
    const store = new YcsbStore(100, 8);
    const writes = [
      { key: 5, value: Buffer.alloc(8, 1) },
      { key: 100, value: Buffer.alloc(8, 2) },
    ];
    expect(store.validWrites(decoded(writes))).toBe(false);
    expect(store.validWrites(decoded(writes.slice(0, 1)))).toBe(true);
    expect(() => store.apply(1, decoded(writes), true)).toThrow(/outside the table/);
    expect(store.read(5).equals(Buffer.alloc(8))).toBe(true);
  });
});
