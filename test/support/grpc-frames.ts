// One gRPC message as a raw HTTP/2 client sends it: the 5-byte prefix (compressed flag, length)
// then the bytes. For tests that speak gRPC below a client library, compressed flag included.

export function framed(message: Buffer, flag = 0): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out[0] = flag;
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}
