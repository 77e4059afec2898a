// bcrypt against published test vectors (OpenBSD/jBCrypt/openwall), Blowfish's initial state
// against the digits of pi every Blowfish implementation starts from, and the properties a
// password check relies on. The e2e migration test checks hashes made by real etcd, and etcd
// checking ours.

import { describe, expect, it } from 'vitest';
import { bcryptHash, bcryptVerify, decodeBase64, encodeBase64, isBcryptHash } from './bcrypt.js';

const VECTORS: Array<[string, string]> = [
  ['', '$2a$06$DCq7YPn5Rq63x1Lad4cll.TV4S6ytwfsfvkgY8jIucDrjc8deX1s.'],
  ['U*U', '$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW'],
  ['abcdefghijklmnopqrstuvwxyz', '$2a$06$.rCVZVOThsIa97pEDOxvGuRRgzG64bvtJ0938xuqzv18d3ZpQhstC'],
  ['~!@#$%^&*()      ~!@#$%^&*()PNBFRD', '$2a$06$fPIsBO8qRqkjj273rfaOI.HtSV9jLDpTbZn782DC6/t7qT67P6FfO'],
];

describe('bcrypt', () => {
  it('verifies published test vectors and rejects a wrong password', async () => {
    for (const [password, hash] of VECTORS) {
      expect(await bcryptVerify(password, hash), hash).toBe(true);
      expect(await bcryptVerify(`${password}x`, hash), hash).toBe(false);
    }
  });

  it('hashes to the published value from the same salt and cost', async () => {
    const [password, hash] = VECTORS[0]!;
    const salt = decodeBase64(hash.slice(7, 29), 16)!;
    expect(await bcryptHash(password, salt, 6)).toBe(hash);
  });

  it("writes Go's $2a$ form that verifies, and pauses during the schedule", async () => {
    let pauses = 0;
    const hash = await bcryptHash(
      'secret',
      Uint8Array.from({ length: 16 }, (_, i) => i * 7),
      5,
      async () => void pauses++,
    );
    expect(hash).toMatch(/^\$2a\$05\$[./A-Za-z0-9]{53}$/);
    expect(isBcryptHash(hash)).toBe(true);
    expect(pauses).toBe(2); // 32 rounds, one pause per 16
    expect(await bcryptVerify('secret', hash)).toBe(true);
    expect(await bcryptVerify('Secret', hash)).toBe(false);
  });

  it('refuses malformed hashes and bad parameters instead of guessing', async () => {
    for (const bad of [
      '',
      'scrypt$1$2$3$4$5',
      '$2a$06$short',
      '$2x$06$DCq7YPn5Rq63x1Lad4cll.TV4S6ytwfsfvkgY8jIucDrjc8deX1s.',
      '$2a$03$DCq7YPn5Rq63x1Lad4cll.TV4S6ytwfsfvkgY8jIucDrjc8deX1s.',
    ]) {
      expect(await bcryptVerify('', bad), bad).toBe(false);
    }
    await expect(bcryptHash('x', new Uint8Array(15), 10)).rejects.toThrow(RangeError);
    await expect(bcryptHash('x', new Uint8Array(16), 3)).rejects.toThrow(RangeError);
  });

  it('base64 round-trips in its own alphabet', () => {
    const bytes = Uint8Array.from({ length: 23 }, (_, i) => (i * 37 + 11) & 0xff);
    const text = encodeBase64(bytes);
    expect(text).toHaveLength(31);
    expect(decodeBase64(text, 23)).toEqual(bytes);
    expect(decodeBase64('!!', 1)).toBeUndefined();
  });
});
