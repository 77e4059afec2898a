// The method table both sides of the edge channel agree on: every method of every service,
// numbered in the order proto.ts lists them (both processes load the same protos), so a call's
// start names its method by index. And the raw service definitions an edge serves: identity
// (de)serializers, so requests and responses stay protobuf bytes the edge never decodes.

import type * as grpc from '@grpc/grpc-js';
import { type ServiceName, services } from '../proto.js';

export interface EdgeMethod {
  readonly index: number;
  readonly service: ServiceName;
  readonly name: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
}

export const EDGE_METHODS: readonly EdgeMethod[] = (Object.keys(services) as ServiceName[])
  .flatMap((service) =>
    Object.entries(services[service]).map(([name, definition]) => ({
      service,
      name,
      requestStream: definition.requestStream,
      responseStream: definition.responseStream,
    })),
  )
  .map((method, index) => ({ ...method, index }));

const identity = (bytes: Buffer): Buffer => bytes;

/** A service as the edge serves it: the same paths, raw bytes in and out. */
export function rawDefinition(service: ServiceName): grpc.ServiceDefinition {
  const raw: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
  for (const [name, method] of Object.entries(services[service])) {
    raw[name] = {
      ...(method as grpc.MethodDefinition<Buffer, Buffer>),
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
    };
  }
  return raw as grpc.ServiceDefinition;
}
