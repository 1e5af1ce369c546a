import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useMemo, useState } from "react";
import { ApiError } from "../api/client";
import { useDeleteContact, useUpdateContact } from "../api/mutations";
import { keys, useContact } from "../api/queries";
import { CONTACT_FIELDS, type Contact, type ContactInput } from "../api/types";
import { Button } from "./Button";
import { ConfirmDialog } from "./ConfirmDialog";
import { ContactFields, FormError, describeError } from "./ContactFields";

const inputOf = (c: Contact): ContactInput => ({
  first_name: c.first_name,
  last_name: c.last_name,
  email: c.email,
  phone: c.phone,
});

interface Props {
  onDeleted: () => void;
  /** Whether the form holds edits not saved yet (told to others as presence "editing"). */
  onEditing?: (editing: boolean) => void;
}

/** Edits one loaded contact; `base` is the version the edits apply to (sent as If-Match). */
function EditForm({ contact, onDeleted, onEditing }: Props & { contact: Contact }) {
  const [base, setBase] = useState(contact);
  const [values, setValues] = useState(() => inputOf(contact));
  const [saved, setSaved] = useState<string | null>(null);
  const [confirming, setConfirming] = useState(false);
  const client = useQueryClient();
  const update = useUpdateContact();
  const remove = useDeleteContact();

  const patch = Object.fromEntries(CONTACT_FIELDS.filter((f) => values[f] !== base[f]).map((f) => [f, values[f]]));
  const dirty = Object.keys(patch).length > 0;
  useEffect(() => {
    onEditing?.(dirty);
    return () => onEditing?.(false);
  }, [dirty, onEditing]);

  // A newer version arrived (live or refetched): take it unless the user is mid-edit.
  if (contact.version > base.version && !dirty) {
    setBase(contact);
    setValues(inputOf(contact));
  }
  const newer = contact.version > base.version;

  const error = update.error ?? remove.error;
  // A 412 is explained by the newer version once it is loaded (see `newer`).
  const conflictShown = newer && error instanceof ApiError && error.status === 412;
  const { fields, message } = useMemo(() => describeError(conflictShown ? null : error), [conflictShown, error]);

  const onError = (failure: Error) => {
    if (failure instanceof ApiError && failure.status === 412) {
      void client.invalidateQueries({ queryKey: keys.detail(base.id) });
    }
  };

  const save = (event: React.FormEvent) => {
    event.preventDefault();
    setSaved(null);
    update.mutate(
      { base, patch },
      {
        onSuccess: (next) => {
          setBase(next);
          setValues(inputOf(next));
          setSaved(`Saved version ${next.version}.`);
        },
        onError,
      },
    );
  };

  /** Moves to the newer version: fields the user changed keep the user's value, if `keepEdits`. */
  const rebase = (keepEdits: boolean) => {
    const merged = inputOf(contact);
    if (keepEdits) for (const f of CONTACT_FIELDS) if (values[f] !== base[f]) merged[f] = values[f];
    setBase(contact);
    setValues(merged);
    update.reset();
    remove.reset();
  };

  return (
    <form onSubmit={save} className="flex flex-col gap-4">
      <ContactFields
        values={values}
        onChange={(next) => {
          setSaved(null);
          setValues(next);
        }}
        errors={fields}
      />
      {newer && (
        <div role="alert" className="rounded-md border border-amber-300 bg-amber-50 px-3 py-2 text-sm text-amber-900">
          <p>
            Someone else saved version {contact.version} while you were editing version {base.version}.
          </p>
          <div className="mt-2 flex flex-wrap gap-2">
            <Button onClick={() => rebase(true)}>Keep my edits</Button>
            <Button onClick={() => rebase(false)}>Discard my edits</Button>
          </div>
        </div>
      )}
      <FormError message={message} />
      <p role="status" className="text-sm text-green-800">
        {saved}
      </p>
      <div className="flex flex-wrap gap-2">
        <Button type="submit" variant="primary" disabled={!dirty || newer || update.isPending}>
          {update.isPending ? "Saving…" : "Save"}
        </Button>
        <Button variant="danger" onClick={() => setConfirming(true)} disabled={remove.isPending}>
          Delete
        </Button>
      </div>
      <ConfirmDialog
        open={confirming}
        title="Delete this contact?"
        confirmLabel="Yes, delete"
        busy={remove.isPending}
        onCancel={() => setConfirming(false)}
        onConfirm={() =>
          remove.mutate(base, {
            onSuccess: onDeleted,
            onError,
            onSettled: () => setConfirming(false),
          })
        }
      >
        {base.first_name} {base.last_name} ({base.email}) will be deleted for everyone. Its history is kept.
      </ConfirmDialog>
    </form>
  );
}

export function EditContact({ id, ...props }: Props & { id: number }) {
  const { data: contact, isPending, error, refetch } = useContact(id);
  if (isPending) return <p className="text-sm text-slate-600">Loading…</p>;
  if (error)
    return (
      <div className="flex flex-col gap-2">
        <FormError message={describeError(error).message} />
        <Button onClick={() => void refetch()}>Try again</Button>
      </div>
    );
  if (!contact) return <p className="text-sm text-slate-700">This contact has been deleted.</p>;
  return <EditForm contact={contact} {...props} />;
}
