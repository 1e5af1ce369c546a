import { useEffect, useId, useRef } from "react";
import { ApiError } from "../api/client";
import type { ContactField, ContactInput } from "../api/types";

export const FIELDS: { name: ContactField; label: string; type: string; autoComplete: string; maxLength: number }[] = [
  { name: "first_name", label: "First name", type: "text", autoComplete: "given-name", maxLength: 100 },
  { name: "last_name", label: "Last name", type: "text", autoComplete: "family-name", maxLength: 100 },
  { name: "email", label: "Email", type: "email", autoComplete: "email", maxLength: 254 },
  { name: "phone", label: "Phone", type: "tel", autoComplete: "tel", maxLength: 100 },
];

export const fieldLabel = (name: string) => FIELDS.find((f) => f.name === name)?.label ?? name;

export const EMPTY: ContactInput = { first_name: "", last_name: "", email: "", phone: "" };

interface Props {
  values: ContactInput;
  onChange: (values: ContactInput) => void;
  /** Server messages by field; the first one gets focus when they arrive. */
  errors: Record<string, string>;
  readOnly?: boolean;
  autoFocus?: boolean;
}

/** The four contact inputs, each with its label and its server error next to it. */
export function ContactFields({ values, onChange, errors, readOnly, autoFocus }: Props) {
  const id = useId();
  const inputs = useRef(new Map<string, HTMLInputElement>());

  useEffect(() => {
    const first = FIELDS.find((f) => errors[f.name]);
    if (first) inputs.current.get(first.name)?.focus();
  }, [errors]);

  return (
    <div className="grid gap-3 sm:grid-cols-2">
      {FIELDS.map((field, index) => {
        const error = errors[field.name];
        const inputId = `${id}-${field.name}`;
        return (
          <div key={field.name} className="flex flex-col gap-1">
            <label htmlFor={inputId} className="text-sm font-medium text-slate-700">
              {field.label}
            </label>
            <input
              id={inputId}
              ref={(el) => {
                if (el) inputs.current.set(field.name, el);
              }}
              name={field.name}
              type={field.type}
              autoComplete={field.autoComplete}
              maxLength={field.maxLength}
              required
              readOnly={readOnly}
              autoFocus={autoFocus && index === 0}
              value={values[field.name]}
              onChange={(e) => onChange({ ...values, [field.name]: e.target.value })}
              aria-invalid={error ? true : undefined}
              aria-describedby={error ? `${inputId}-error` : undefined}
              className={`rounded-md border px-3 py-2 text-base read-only:bg-slate-100 read-only:text-slate-500 ${
                error ? "border-red-600" : "border-slate-300"
              }`}
            />
            {error && (
              <p id={`${inputId}-error`} className="text-sm text-red-700" data-testid={`error-${field.name}`}>
                {error}
              </p>
            )}
          </div>
        );
      })}
    </div>
  );
}

/** Problem details that no input can show (e.g. a 412 or a 5xx). */
export function FormError({ message }: { message: string | null }) {
  if (!message) return null;
  return (
    <p role="alert" className="rounded-md border border-red-200 bg-red-50 px-3 py-2 text-sm text-red-800">
      {message}
    </p>
  );
}

/** Splits a failed write into messages for the inputs and one for the whole form. */
export function describeError(error: unknown): { fields: Record<string, string>; message: string | null } {
  if (!error) return { fields: {}, message: null };
  if (!(error instanceof ApiError)) {
    return { fields: {}, message: "Could not reach the server. Check your connection and try again." };
  }
  if (error.status === 401) return { fields: {}, message: "Your session ended. Sign in, then try again." };
  if (error.status === 403) return { fields: {}, message: "Your role does not allow this. Ask an admin." };
  const fields: Record<string, string> = {};
  const others: string[] = [];
  for (const { field, message } of error.problem.errors ?? []) {
    if (FIELDS.some((f) => f.name === field)) fields[field] = message;
    else others.push(field ? `${field}: ${message}` : message);
  }
  const summary = error.problem.detail ?? error.problem.title;
  const message = others.length ? others.join(" ") : Object.keys(fields).length ? null : summary;
  return { fields, message };
}
