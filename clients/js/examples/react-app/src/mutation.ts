// One pending mutation per control: `run` disables it until the server confirmed (the client's
// action resolved) and keeps the error, with the field errors of its problem document.
import { useCallback, useEffect, useRef, useState } from "react";
import { LibraryError } from "@librarian/client";

export interface Failure {
  /** What went wrong, for the form as a whole. */
  message: string;
  /** Field name (its first segment: `tags[2]` → `tags`) → messages. */
  fields: Record<string, string[]>;
}

/** The form-level message and the field errors of whatever an action rejected with. */
export function describeFailure(error: unknown): Failure {
  // The client rejects with a LibraryError, whose `fieldErrors` are the problem's `errors`.
  const e = error instanceof LibraryError ? error : null;
  const list = e?.fieldErrors ?? [];
  const fields: Record<string, string[]> = {};
  for (const { field, message } of list) {
    const root = field.split(/[.[]/)[0] || field;
    (fields[root] ??= []).push(field === root ? message : `${field}: ${message}`);
  }
  const message =
    e?.status === 412
      ? "This was changed elsewhere in the meantime: cancel, then edit the current version."
      : list.length
        ? "Please fix the marked fields."
        : error instanceof Error
          ? error.message
          : String(error);
  return { message, fields };
}

export interface Mutation {
  pending: boolean;
  failure: Failure | null;
  /** Runs `action`; resolves to true once it succeeded, false if it failed (the failure is kept). */
  run: (action: () => Promise<unknown>) => Promise<boolean>;
  reset: () => void;
}

export function useMutation(): Mutation {
  const [pending, setPending] = useState(false);
  const [failure, setFailure] = useState<Failure | null>(null);
  const mounted = useRef(true);
  useEffect(() => {
    mounted.current = true;
    return () => {
      mounted.current = false;
    };
  }, []);

  const run = useCallback(async (action: () => Promise<unknown>) => {
    setPending(true);
    setFailure(null);
    try {
      await action();
      return true;
    } catch (error) {
      if (mounted.current) setFailure(describeFailure(error));
      return false;
    } finally {
      if (mounted.current) setPending(false);
    }
  }, []);
  const reset = useCallback(() => setFailure(null), []);
  return { pending, failure, run, reset };
}
