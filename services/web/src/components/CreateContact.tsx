import { useEffect, useMemo, useRef, useState } from "react";
import { newIdempotencyKey } from "../api/client";
import { useCreateContact } from "../api/mutations";
import type { Contact, ContactInput } from "../api/types";
import { Button } from "./Button";
import { ContactFields, EMPTY, FormError, describeError } from "./ContactFields";

function useElapsedSeconds(running: boolean): number {
  const [elapsed, setElapsed] = useState(0);
  useEffect(() => {
    if (!running) return;
    const started = Date.now();
    setElapsed(0);
    const timer = setInterval(() => setElapsed(Math.floor((Date.now() - started) / 1000)), 1000);
    return () => clearInterval(timer);
  }, [running]);
  return elapsed;
}

/**
 * The create form. The server confirms a new contact only after ~20 s (it is
 * saved and shown to everyone at once), so the wait is shown as it is.
 */
export function CreateContact({ onClose }: { onClose: () => void }) {
  const [values, setValues] = useState<ContactInput>(EMPTY);
  const [created, setCreated] = useState<Contact | null>(null);
  const idempotencyKey = useRef<string | null>(null);
  const create = useCreateContact();
  const elapsed = useElapsedSeconds(create.isPending);
  const { fields, message } = useMemo(() => describeError(create.error), [create.error]);

  const change = (next: ContactInput) => {
    idempotencyKey.current = null; // a different body is a different request
    setCreated(null);
    setValues(next);
  };

  const submit = (event: React.FormEvent) => {
    event.preventDefault();
    idempotencyKey.current ??= newIdempotencyKey();
    setCreated(null);
    create.mutate(
      { input: values, idempotencyKey: idempotencyKey.current },
      {
        onSuccess: (contact) => {
          setCreated(contact);
          setValues(EMPTY);
          idempotencyKey.current = null;
        },
      },
    );
  };

  return (
    <form onSubmit={submit} className="flex flex-col gap-4" aria-busy={create.isPending}>
      <ContactFields values={values} onChange={change} errors={fields} readOnly={create.isPending} autoFocus />
      <FormError message={message} />
      <div role="status" aria-live="polite" data-testid="create-status" className="text-sm">
        {create.isPending && (
          <div className="rounded-md border border-blue-200 bg-blue-50 px-3 py-2 text-blue-900">
            <p className="font-medium">Saving… {elapsed} s</p>
            <p>
              The server confirms a new contact after about 20 seconds. It is in the list, for everyone, as soon
              as it is saved; you can keep working.
            </p>
            <progress className="mt-2 w-full" max={20} value={Math.min(elapsed, 20)} aria-label="Confirmation wait" />
          </div>
        )}
        {created && (
          <p className="rounded-md border border-green-200 bg-green-50 px-3 py-2 text-green-900">
            Created {created.first_name} {created.last_name} ({created.email}).
          </p>
        )}
      </div>
      <div className="flex gap-2">
        <Button type="submit" variant="primary" disabled={create.isPending}>
          Save
        </Button>
        <Button type="button" onClick={onClose}>
          Close
        </Button>
      </div>
    </form>
  );
}
