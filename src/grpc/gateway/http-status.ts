// grpc-gateway's (v1, as vendored by etcd 3.4) HTTP status for each gRPC code, with Go's
// status text (stream errors carry it as "http_status").

const BY_CODE: ReadonlyArray<[status: number, text: string]> = [
  [200, 'OK'], // OK
  [408, 'Request Timeout'], // CANCELLED
  [500, 'Internal Server Error'], // UNKNOWN
  [400, 'Bad Request'], // INVALID_ARGUMENT
  [504, 'Gateway Timeout'], // DEADLINE_EXCEEDED
  [404, 'Not Found'], // NOT_FOUND
  [409, 'Conflict'], // ALREADY_EXISTS
  [403, 'Forbidden'], // PERMISSION_DENIED
  [429, 'Too Many Requests'], // RESOURCE_EXHAUSTED
  [412, 'Precondition Failed'], // FAILED_PRECONDITION
  [409, 'Conflict'], // ABORTED
  [400, 'Bad Request'], // OUT_OF_RANGE
  [501, 'Not Implemented'], // UNIMPLEMENTED
  [500, 'Internal Server Error'], // INTERNAL
  [503, 'Service Unavailable'], // UNAVAILABLE
  [500, 'Internal Server Error'], // DATA_LOSS
  [401, 'Unauthorized'], // UNAUTHENTICATED
];

export function httpStatusOf(code: number): { status: number; text: string } {
  const [status, text] = BY_CODE[code] ?? [500, 'Internal Server Error'];
  return { status, text };
}
