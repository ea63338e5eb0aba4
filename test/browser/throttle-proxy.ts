/**
 * A TCP proxy on 127.0.0.1 that slows what the browser sends (uploads) to a
 * set rate and counts the bytes that reach the server, so a test can go
 * offline or reload in the middle of an upload of a few megabytes.
 */
import net from 'node:net';

export interface ThrottleProxy {
  url: string;
  /** Bytes forwarded from clients to the server so far (request lines, headers and bodies). */
  forwardedBytes(): number;
  close(): Promise<void>;
}

export async function startThrottleProxy(target: string, bytesPerSecond: number): Promise<ThrottleProxy> {
  const { hostname, port } = new URL(target);
  let forwarded = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), hostname);
    sockets.add(client).add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    upstream.pipe(client);
    // Client to server: one chunk at a time, each held back for as long as the rate says.
    client.on('data', (chunk: Buffer) => {
      client.pause();
      setTimeout(
        () => {
          if (upstream.destroyed) return;
          forwarded += chunk.length;
          if (upstream.write(chunk)) client.resume();
          else upstream.once('drain', () => client.resume());
        },
        (chunk.length / bytesPerSecond) * 1000,
      );
    });
    client.on('end', () => upstream.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${address.port}`,
    forwardedBytes: () => forwarded,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
