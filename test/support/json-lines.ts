// The JSON gateway streams a watch as newline-separated JSON objects; tests read them one line
// at a time.

/** Reads `response`'s body as newline-separated lines, one per next() call; cancel() stops reading. */
export function jsonLines(response: Response): { next(): Promise<string>; cancel(): Promise<void> } {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = '';
  return {
    async next() {
      while (!buffered.includes('\n')) {
        const { value, done } = await reader.read();
        if (done) throw new Error('watch stream ended');
        buffered += value;
      }
      const at = buffered.indexOf('\n');
      const line = buffered.slice(0, at);
      buffered = buffered.slice(at + 1);
      return line;
    },
    cancel: () => reader.cancel().catch(() => undefined),
  };
}
