// What grpc-js does with a call's grpc-timeout header and with the error a handler gives its
// callback, for the call layer that answers as grpc-js 1.14 does (h2/grpc-calls.ts).

import * as grpc from '@grpc/grpc-js';

/** grpc-js's grpc-timeout parsing (server-interceptors.ts): not anchored, as there. */
export const TIMEOUT_PATTERN = /(\d{1,8})\s*([HMSmun])/;
export const TIMEOUT_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000_001 };

/** What a handler may give its callback as an error (grpc-js's ServerErrorResponse | ServerStatusResponse). */
export type HandlerError = Parameters<grpc.sendUnaryData<unknown>>[0] & object;

export interface CallStatus {
  readonly code: grpc.status;
  readonly details: string;
  readonly metadata: grpc.Metadata | null;
}

/** grpc-js's serverErrorToStatus: the code if it is an integer, else UNKNOWN with the message. */
export function statusOf(error: HandlerError, trailer: grpc.Metadata | undefined): CallStatus {
  const metadata = trailer ?? error.metadata ?? null;
  if (typeof error.code === 'number' && Number.isInteger(error.code)) {
    const details = typeof error.details === 'string' ? error.details : 'message' in error ? error.message : 'Unknown Error';
    return { code: error.code, details, metadata };
  }
  return { code: grpc.status.UNKNOWN, details: 'message' in error ? error.message : 'Unknown Error', metadata };
}
