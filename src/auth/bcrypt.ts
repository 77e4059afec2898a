// bcrypt (Provos and Mazieres' "Future-Adaptable Password Scheme"), the password hash etcd
// keeps for its users (`$2a$10$...`, Go's x/crypto/bcrypt at etcd's default cost 10). MetaStore
// hashes passwords the same way, so users move between MetaStore and etcd with their passwords.
// Node's crypto has no Blowfish with bcrypt's expensive key schedule, hence this file.
//
// Pure: no clock, no randomness (the caller brings the salt), no Node APIs. The key schedule is
// long on purpose (2^cost rounds); `pause` is awaited every PAUSE_EVERY rounds so that the
// caller can let other work run (the server passes a setImmediate turn).
//
// Blowfish's initial state is the fractional part of pi in hex (P-array, then the four
// S-boxes): computed here once, with BigInt, instead of being written out as a table.

/** bcrypt's own base64 alphabet (no padding). */
const ALPHABET = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const SALT_BYTES = 16;
const HASH_BYTES = 23;
const MAX_KEY_BYTES = 72;
const PAUSE_EVERY = 16;
/** "OrpheanBeholderScryDoubt", the text bcrypt encrypts 64 times. */
const MAGIC_TEXT = 'OrpheanBeholderScryDoubt';
const P_WORDS = 18;
const STATE_WORDS = P_WORDS + 4 * 256;

export const BCRYPT_MIN_COST = 4;
export const BCRYPT_MAX_COST = 31;

let initialState: Uint32Array | undefined;

/** The first STATE_WORDS 32-bit words of pi's fractional part (Machin's formula, fixed point). */
function piWords(): Uint32Array {
  if (initialState !== undefined) return initialState;
  const bits = BigInt(STATE_WORDS * 32 + 64); // 64 guard bits absorb the truncation errors
  const one = 1n << bits;
  const arctanInverse = (x: bigint): bigint => {
    const x2 = x * x;
    let power = one / x;
    let sum = power;
    for (let k = 1n; power !== 0n; k++) {
      power /= x2;
      const term = power / (2n * k + 1n);
      sum += k % 2n === 1n ? -term : term;
    }
    return sum;
  };
  const pi = 16n * arctanInverse(5n) - 4n * arctanInverse(239n);
  const fraction = (pi - 3n * one) >> 64n;
  const words = new Uint32Array(STATE_WORDS);
  for (let i = 0; i < STATE_WORDS; i++) words[i] = Number((fraction >> BigInt((STATE_WORDS - 1 - i) * 32)) & 0xffffffffn);
  initialState = words;
  return words;
}

/**
 * Blowfish with bcrypt's key schedule: P = state[0..17], S-box i = state[18 + 256 i ...].
 * Written for speed (the schedule runs 2^cost times): keys and salts come pre-cut into words,
 * the halves of a block live in locals.
 */
class Blowfish {
  readonly state = Uint32Array.from(piWords());
  private left = 0;
  private right = 0;

  /** Encrypts (this.left, this.right) in place. */
  private encryptHalves(): void {
    const s = this.state;
    let left = this.left ^ s[0]!;
    let right = this.right;
    for (let i = 1; i <= 16; i += 2) {
      right ^= (((s[18 + (left >>> 24)]! + s[274 + ((left >>> 16) & 0xff)]!) ^ s[530 + ((left >>> 8) & 0xff)]!) + s[786 + (left & 0xff)]!) ^ s[i]!;
      left ^= (((s[18 + (right >>> 24)]! + s[274 + ((right >>> 16) & 0xff)]!) ^ s[530 + ((right >>> 8) & 0xff)]!) + s[786 + (right & 0xff)]!) ^ s[i + 1]!;
    }
    this.left = right ^ s[17]!;
    this.right = left;
  }

  /** Encrypts words[at], words[at + 1] in place. */
  encrypt(words: Uint32Array, at: number): void {
    this.left = words[at]!;
    this.right = words[at + 1]!;
    this.encryptHalves();
    words[at] = this.left;
    words[at + 1] = this.right;
  }

  /**
   * bcrypt's ExpandKey: the key's 18 words into P, then every P and S word re-made by
   * encryption, the salt's words (4, cycling) mixed in first when there is a salt.
   */
  expand(keyWords: Uint32Array, saltWords: Uint32Array | undefined): void {
    const s = this.state;
    for (let i = 0; i < P_WORDS; i++) s[i] = s[i]! ^ keyWords[i]!;
    this.left = 0;
    this.right = 0;
    for (let i = 0; i < STATE_WORDS; i += 2) {
      if (saltWords !== undefined) {
        this.left ^= saltWords[i & 3]!;
        this.right ^= saltWords[(i + 1) & 3]!;
      }
      this.encryptHalves();
      s[i] = this.left;
      s[i + 1] = this.right;
    }
  }
}

/** The first `count` big-endian 32-bit words of `bytes` repeated endlessly (wrapping mid-word as needed). */
function cyclingWords(bytes: Uint8Array, count: number): Uint32Array {
  const words = new Uint32Array(count);
  let at = 0;
  for (let w = 0; w < count; w++) {
    let word = 0;
    for (let i = 0; i < 4; i++) {
      word = (word << 8) | bytes[at]!;
      at = (at + 1) % bytes.length;
    }
    words[w] = word;
  }
  return words;
}

export function encodeBase64(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const chunk = (bytes[i]! << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    const chars = Math.min(4, Math.ceil(((bytes.length - i) * 8) / 6));
    for (let j = 0; j < chars; j++) out += ALPHABET[(chunk >>> (18 - 6 * j)) & 0x3f];
  }
  return out;
}

/** Decodes `bytes` bytes from bcrypt base64; undefined for a character outside the alphabet. */
export function decodeBase64(text: string, bytes: number): Uint8Array | undefined {
  const out = new Uint8Array(bytes);
  let bitBuffer = 0;
  let bitCount = 0;
  let filled = 0;
  for (const char of text) {
    const value = ALPHABET.indexOf(char);
    if (value < 0) return undefined;
    bitBuffer = ((bitBuffer << 6) | value) & 0xffffff;
    bitCount += 6;
    if (bitCount >= 8 && filled < bytes) {
      bitCount -= 8;
      out[filled++] = (bitBuffer >>> bitCount) & 0xff;
    }
  }
  return filled === bytes ? out : undefined;
}

/** The bytes bcrypt keys Blowfish with: UTF-8 password plus NUL, at most 72 bytes. */
function passwordKey(password: string): Uint8Array {
  const encoded = new TextEncoder().encode(password);
  const key = new Uint8Array(Math.min(encoded.length + 1, MAX_KEY_BYTES));
  key.set(encoded.subarray(0, key.length));
  return key; // the NUL is the zero the array starts with
}

/** The 23 hash bytes of `password` under `salt` (16 bytes) at 2^cost rounds. */
async function rawHash(password: string, salt: Uint8Array, cost: number, pause: () => Promise<void>): Promise<Uint8Array> {
  const key = passwordKey(password);
  const keyWords = cyclingWords(key, P_WORDS);
  // Salt words by position: the salted expansion cycles the 4 words across P and S alike.
  const saltWords = cyclingWords(salt, 4);
  const saltAsKey = cyclingWords(salt, P_WORDS);
  const cipher = new Blowfish();
  cipher.expand(keyWords, saltWords);
  const rounds = 2 ** cost;
  for (let round = 0; round < rounds; round++) {
    cipher.expand(keyWords, undefined);
    cipher.expand(saltAsKey, undefined);
    if (round % PAUSE_EVERY === PAUSE_EVERY - 1) await pause();
  }
  const words = cyclingWords(new TextEncoder().encode(MAGIC_TEXT), 6);
  for (let block = 0; block < 6; block += 2) for (let i = 0; i < 64; i++) cipher.encrypt(words, block);
  const out = new Uint8Array(24);
  for (let i = 0; i < 6; i++) for (let b = 0; b < 4; b++) out[4 * i + b] = (words[i]! >>> (24 - 8 * b)) & 0xff;
  return out.subarray(0, HASH_BYTES);
}

const noPause = (): Promise<void> => Promise.resolve();

/** `$2a$<cost>$<salt><hash>` as Go's bcrypt and etcd write it. */
export async function bcryptHash(password: string, salt: Uint8Array, cost: number, pause = noPause): Promise<string> {
  if (salt.length !== SALT_BYTES) throw new RangeError(`bcrypt salt is ${salt.length} bytes, not ${SALT_BYTES}`);
  if (!Number.isInteger(cost) || cost < BCRYPT_MIN_COST || cost > BCRYPT_MAX_COST) throw new RangeError(`bcrypt cost ${cost} is out of range`);
  const hash = await rawHash(password, salt, cost, pause);
  return `$2a$${String(cost).padStart(2, '0')}$${encodeBase64(salt)}${encodeBase64(hash)}`;
}

/** Whether `encoded` looks like a bcrypt hash ($2a$, $2b$ or $2y$). */
export function isBcryptHash(encoded: string): boolean {
  return /^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/.test(encoded);
}

/** Checks `password` against a bcrypt hash; false for a malformed hash. */
export async function bcryptVerify(password: string, encoded: string, pause = noPause): Promise<boolean> {
  if (!isBcryptHash(encoded)) return false;
  const cost = Number(encoded.slice(4, 6));
  const salt = decodeBase64(encoded.slice(7, 29), SALT_BYTES);
  const expected = decodeBase64(encoded.slice(29), HASH_BYTES);
  if (salt === undefined || expected === undefined || cost < BCRYPT_MIN_COST || cost > BCRYPT_MAX_COST) return false;
  const actual = await rawHash(password, salt, cost, pause);
  let difference = 0;
  for (let i = 0; i < HASH_BYTES; i++) difference |= actual[i]! ^ expected[i]!;
  return difference === 0;
}
