/**
 * Where a command writes: the process's stdout and stderr, or a test's
 * buffers. `columns` is the width help text is wrapped to.
 */
export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  readonly columns?: number;
}

export const processIo: Io = {
  out: (s) => {
    process.stdout.write(s);
  },
  err: (s) => {
    process.stderr.write(s);
  },
};
