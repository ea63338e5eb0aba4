import { parseBytes } from '../../../config/units.js';
import { startServer } from '../../serve.js';
import { bootstrapAdmin } from '../../services/auth.js';
import { recoverInterruptedDeletes } from '../../services/gc.js';
import { STRING, defineCommand } from '../context.js';

export const serveCommand = defineCommand({
  summary: 'run the mirror (what npm start runs)',
  usage: 'goldmirror serve [--host HOST] [--port PORT] [--bandwidth-limit BYTES_PER_SEC]',
  options: { host: STRING, port: STRING, 'bandwidth-limit': STRING },
  arity: [0, 'serve takes no arguments'],
  async run(ctx, { values }) {
    const overrides: Record<string, unknown> = {};
    if (values.host !== undefined) overrides.host = values.host;
    if (values.port !== undefined) overrides.port = /^\d+$/.test(values.port) ? Number(values.port) : values.port;
    if (values['bandwidth-limit'] !== undefined) {
      overrides.maxBytesPerSec = parseBytes(values['bandwidth-limit']) ?? values['bandwidth-limit'];
    }
    const config = ctx.loadConfig(overrides);
    const runtime = await ctx.openRuntime(config, { verbose: true });
    const { log } = runtime;
    const admin = await bootstrapAdmin(runtime, runtime.store.layout.root, config.adminPassword || undefined).catch(
      async (err: unknown) => {
        await runtime.close();
        throw err;
      },
    );
    if (admin.generatedPassword) {
      // Printed once, on stdout (logs may be shipped elsewhere); also kept in a 0600 file.
      process.stdout.write(
        `\nFirst start: created user "admin" with password\n\n    ${admin.generatedPassword}\n\n` +
          `It is also saved in ${admin.passwordFile} (readable only by this user). ` +
          'Sign in and change it, then delete that file.\n\n',
      );
    }
    if (admin.passwordIgnored) {
      log.info(
        'MIRROR_ADMIN_PASSWORD is set, but an admin exists: its password was left as it is (reset it with `goldmirror admin reset-password`)',
      );
    }
    const removed = await runtime.store.removeStaleTmpFiles();
    if (removed.length > 0) log.info({ removed }, 'removed temp files left by interrupted ingests');
    const deletes = await recoverInterruptedDeletes(runtime);
    if (deletes.restored.length + deletes.removed.length > 0)
      log.info(deletes, 'finished deletes left by interrupted processes');

    const handle = await startServer(runtime).catch(async (err: unknown) => {
      await runtime.close();
      throw err;
    });
    log.info(
      { url: handle.url, host: config.host, port: config.port, dataDir: runtime.store.layout.root },
      'goldmirror listening',
    );

    await new Promise<void>((resolve) => {
      const stop = (signal: NodeJS.Signals): void => {
        log.info({ signal }, 'shutting down: waiting for running transfers');
        process.off('SIGTERM', stop);
        process.off('SIGINT', stop);
        resolve();
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    });
    await handle.close();
    await runtime.close();
    log.info('stopped');
    return 0;
  },
});
