// Counts open client connections (HTTP/2 sessions) of the gRPC servers in this process, for
// grpc_server_active_connections.
//
// grpc-js offers no connection callback, and counting calls is not counting connections (one
// connection carries many calls; an idle connection carries none). It does keep, per server,
// the list of live sessions for channelz, and exports channelz's handlers publicly
// (`getChannelzHandlers`). We call two of them in-process, synchronously, at scrape time:
// GetServers to list the servers, GetServerSockets to list each one's client sockets.
//
// Invariants / limits:
// - Counts every grpc-js server in the process that has channelz enabled (the default).
//   MetaStore runs one gRPC server today; if a second one (say, a peer transport) appears,
//   pass its channelz id to exclude it.
// - Costs O(connections) per scrape and nothing on the request path.

import * as grpc from '@grpc/grpc-js';

type Callback<T> = (error: unknown, response?: T) => void;
type Handler<Req, Res> = (call: { request: Req }, callback: Callback<Res>) => void;

interface ServersPage {
  server: Array<{ ref: { server_id: number | string } }>;
  end: boolean;
}
interface SocketsPage {
  socket_ref: Array<{ socket_id: number | string }>;
  end: boolean;
}

/** Calls a channelz handler that answers synchronously (they all do in grpc-js). */
function callSync<Req, Res>(handler: Handler<Req, Res>, request: Req): Res {
  let result: Res | undefined;
  let failure: unknown;
  let answered = false;
  handler({ request }, (error, response) => {
    answered = true;
    failure = error;
    result = response;
  });
  if (!answered) throw new Error('channelz handler did not answer synchronously');
  if (failure) throw new Error(`channelz: ${(failure as { details?: string }).details ?? String(failure)}`);
  return result as Res;
}

/** Open client connections across this process's gRPC servers (minus `excludeServerIds`). */
export function countGrpcConnections(excludeServerIds: ReadonlySet<number> = new Set()): number {
  const handlers = grpc.getChannelzHandlers() as unknown as {
    GetServers: Handler<{ start_server_id: string; max_results: string }, ServersPage>;
    GetServerSockets: Handler<{ server_id: string; start_socket_id: string; max_results: string }, SocketsPage>;
  };
  let total = 0;
  let nextServer = 0;
  for (;;) {
    const page = callSync(handlers.GetServers, { start_server_id: String(nextServer), max_results: '0' });
    for (const server of page.server) {
      const serverId = Number(server.ref.server_id);
      nextServer = serverId + 1;
      if (excludeServerIds.has(serverId)) continue;
      let nextSocket = 0;
      for (;;) {
        let sockets: SocketsPage;
        try {
          sockets = callSync(handlers.GetServerSockets, {
            server_id: String(serverId),
            start_socket_id: String(nextSocket),
            max_results: '0',
          });
        } catch {
          break; // The server went away between the two calls.
        }
        total += sockets.socket_ref.length;
        const last = sockets.socket_ref[sockets.socket_ref.length - 1];
        if (sockets.end || last === undefined) break;
        nextSocket = Number(last.socket_id) + 1;
      }
    }
    if (page.end || page.server.length === 0) break;
  }
  return total;
}
