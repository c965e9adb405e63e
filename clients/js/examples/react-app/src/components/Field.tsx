import type { ReactNode } from "react";
import type { Failure } from "../mutation";

/** A labelled form control with the server's errors for `name` right under it. */
export function Field({
  label,
  name,
  failure,
  group = false,
  children,
}: {
  label: string;
  name: string;
  failure: Failure | null;
  /** Several controls (checkboxes): a fieldset with a legend instead of one label. */
  group?: boolean;
  children: ReactNode;
}) {
  const errors = failure?.fields[name] ?? [];
  return (
    <div className={errors.length ? "field invalid" : "field"}>
      {group ? (
        <fieldset>
          <legend className="label">{label}</legend>
          {children}
        </fieldset>
      ) : (
        <label>
          <span className="label">{label}</span>
          {children}
        </label>
      )}
      {errors.map((message) => (
        <p key={message} className="field-error" data-testid="field-error" data-field={name}>
          {message}
        </p>
      ))}
    </div>
  );
}

/** The form-level part of a failure, with the field errors of fields the form does not show. */
export function FormError({ failure, fields = [] }: { failure: Failure | null; fields?: string[] }) {
  if (!failure) return null;
  const others = Object.entries(failure.fields).filter(([name]) => !fields.includes(name));
  return (
    <div className="form-error" role="alert" data-testid="form-error">
      <p>{failure.message}</p>
      {others.map(([name, messages]) => (
        <p key={name} data-testid="field-error" data-field={name}>
          {name}: {messages.join("; ")}
        </p>
      ))}
    </div>
  );
}
