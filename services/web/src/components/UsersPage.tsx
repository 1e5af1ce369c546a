import { useId, useState } from "react";
import { ROLES, type NewUser, type Role, type User } from "../api/types";
import { useAddUser, useUpdateUser, useUsers } from "../api/users";
import { Button } from "./Button";
import { FormError, describeError } from "./ContactFields";

const ROLE_LABEL: Record<Role, string> = { viewer: "Viewer (reads)", editor: "Editor (writes)", admin: "Admin (users too)" };
const inputClass = "rounded-md border border-slate-300 bg-white px-3 py-2 text-base font-normal";
const EMPTY: NewUser = { username: "", name: "", password: "", role: "editor" };

type RoleSelectProps = { value: Role; onChange: (role: Role) => void } & Omit<
  React.ComponentProps<"select">,
  "value" | "onChange"
>;

function RoleSelect({ value, onChange, ...props }: RoleSelectProps) {
  return (
    <select value={value} onChange={(e) => onChange(e.target.value as Role)} className={inputClass} {...props}>
      {ROLES.map((role) => (
        <option key={role} value={role}>
          {ROLE_LABEL[role]}
        </option>
      ))}
    </select>
  );
}

/** Adds a user; the password is the one they sign in with first (12 characters at least). */
function AddUser({ onAdded }: { onAdded: (user: User) => void }) {
  const [values, setValues] = useState<NewUser>(EMPTY);
  const add = useAddUser();
  const set = (field: keyof NewUser) => (e: React.ChangeEvent<HTMLInputElement>) =>
    setValues({ ...values, [field]: e.target.value });
  const submit = (event: React.FormEvent) => {
    event.preventDefault();
    add.mutate(values, {
      onSuccess: (user) => {
        setValues(EMPTY);
        onAdded(user);
      },
    });
  };
  const field = "flex flex-col gap-1 text-sm font-medium text-slate-700";
  return (
    <form
      onSubmit={submit}
      aria-labelledby="add-user-title"
      className="flex flex-col gap-3"
      aria-busy={add.isPending}
    >
      <h3 id="add-user-title" className="text-lg font-semibold">
        Add a user
      </h3>
      <div className="grid gap-3 sm:grid-cols-2">
        <label className={field}>
          Username
          <input
            required
            autoComplete="off"
            autoCapitalize="none"
            spellCheck={false}
            value={values.username}
            onChange={set("username")}
            className={inputClass}
          />
        </label>
        <label className={field}>
          Full name
          <input required autoComplete="off" value={values.name} onChange={set("name")} className={inputClass} />
        </label>
        <label className={field}>
          Password
          <input
            required
            type="password"
            minLength={12}
            autoComplete="new-password"
            value={values.password}
            onChange={set("password")}
            aria-describedby="password-hint"
            className={inputClass}
          />
          <span id="password-hint" className="font-normal text-slate-600">
            At least 12 characters.
          </span>
        </label>
        <label className={field}>
          Role
          <RoleSelect aria-label="Role" value={values.role} onChange={(role) => setValues({ ...values, role })} />
        </label>
      </div>
      <FormError message={describeError(add.error).message} />
      <Button type="submit" variant="primary" disabled={add.isPending} className="self-start">
        {add.isPending ? "Adding…" : "Add user"}
      </Button>
    </form>
  );
}

/** One user: their role and whether they may sign in. Not for oneself (an admin keeps the keys). */
function UserRow({ user, self, onChanged }: { user: User; self: boolean; onChanged: (message: string) => void }) {
  const update = useUpdateUser();
  const id = useId();
  const change = (patch: Partial<User>, message: string) =>
    update.mutate({ id: user.id, patch }, { onSuccess: () => onChanged(message) });
  return (
    <li
      className="flex flex-col gap-2 rounded-md border border-slate-200 bg-white p-3 sm:flex-row sm:items-center"
      data-testid="user-row"
    >
      <div className="min-w-0 flex-1">
        <p id={`${id}-name`} className="truncate font-medium">
          {user.name} {self && <span className="text-sm font-normal text-slate-600">(you)</span>}
        </p>
        <p className="truncate text-sm text-slate-600">
          {user.username}
          {user.disabled && (
            <span className="ml-2 rounded bg-red-100 px-1.5 text-xs font-medium text-red-900">disabled</span>
          )}
        </p>
      </div>
      <RoleSelect
        aria-label={`Role of ${user.name}`}
        value={user.role}
        disabled={self || update.isPending}
        onChange={(role) => change({ role }, `${user.name} is now ${role}.`)}
      />
      <Button
        variant={user.disabled ? "plain" : "danger"}
        disabled={self || update.isPending}
        aria-describedby={`${id}-name`}
        onClick={() =>
          change(
            { disabled: !user.disabled },
            user.disabled ? `${user.name} may sign in again.` : `${user.name} is disabled and signed out.`,
          )
        }
      >
        {user.disabled ? "Enable" : "Disable"}
      </Button>
      {update.error && <FormError message={describeError(update.error).message} />}
    </li>
  );
}

/** For admins: everyone who may sign in, adding users, changing their roles, disabling them. */
export function UsersPage({ me }: { me: User }) {
  const users = useUsers();
  const [notice, setNotice] = useState("");
  return (
    <main aria-labelledby="users-title" className="flex flex-col gap-6">
      <h2 id="users-title" className="text-xl font-semibold">
        Users
      </h2>
      <p role="status" aria-live="polite" data-testid="users-status" className="text-sm text-green-900">
        {notice}
      </p>
      {users.isPending ? (
        <p className="text-sm text-slate-600">Loading users…</p>
      ) : users.error ? (
        <FormError message={describeError(users.error).message} />
      ) : (
        <ul aria-label="Users" className="flex flex-col gap-2">
          {users.data.map((user) => (
            <UserRow key={user.id} user={user} self={user.id === me.id} onChanged={setNotice} />
          ))}
        </ul>
      )}
      <section className="rounded-lg border border-slate-200 bg-white p-4">
        <AddUser onAdded={(user) => setNotice(`Added ${user.name} (${user.username}), ${user.role}.`)} />
      </section>
    </main>
  );
}
