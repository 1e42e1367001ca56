/**
 * Every way the aws backend can fail, one named class per condition (STYLE.md: lodestar), so the
 * CLI prints a sentence the user can act on and callers can tell the cases apart.
 * `translateAwsError` turns what the SDK throws into these.
 */

/** The base of every error the aws backend throws on purpose. */
export class AwsBackendError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Flags or options that do not validate (zod); the message names each offending flag. */
export class InvalidAwsOptionsError extends AwsBackendError {}

/** The SDK's credential chain found nothing (its CredentialsProviderError). */
export class MissingCredentialsError extends AwsBackendError {
  constructor(cause?: unknown) {
    super(
      'AWS credentials not found: set AWS_PROFILE (with a profile in ~/.aws/config) or AWS_ACCESS_KEY_ID and ' +
        'AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials), or run `aws sso login`',
      { cause },
    );
  }
}

/** EC2 refused the credentials themselves (expired, revoked, wrong secret). */
export class CredentialsRejectedError extends AwsBackendError {
  constructor(code: string, detail: string, cause?: unknown) {
    super(`AWS rejected the credentials (${code}): ${detail}; check AWS_PROFILE or AWS_ACCESS_KEY_ID, or log in again`, { cause });
  }
}

/** The credentials are valid but may not perform one of the calls the backend needs. */
export class PermissionDeniedError extends AwsBackendError {
  constructor(
    readonly step: string,
    detail: string,
    cause?: unknown,
  ) {
    super(`not permitted to call EC2 ${step}: ${detail}; the aws backend needs the EC2 permissions listed in infra/aws/README.md`, { cause });
  }
}

export class UnknownRegionError extends AwsBackendError {
  constructor(
    readonly region: string,
    detail: string,
    cause?: unknown,
  ) {
    super(`unknown AWS region '${region}': ${detail}`, { cause });
  }
}

/** An opt-in region the account has not enabled. */
export class RegionNotEnabledError extends AwsBackendError {
  constructor(
    readonly region: string,
    cause?: unknown,
  ) {
    super(`AWS region '${region}' is not enabled for this account (opt-in region); enable it in the console or pick another --region`, { cause });
  }
}

/** Checked with DescribeInstanceTypeOfferings before anything is created. */
export class InstanceTypeNotOfferedError extends AwsBackendError {
  constructor(
    readonly instanceTypes: readonly string[],
    readonly region: string,
    detail: string,
  ) {
    super(`instance type ${instanceTypes.join(', ')} not offered in ${region}: ${detail}`);
  }
}

export class ImageNotFoundError extends AwsBackendError {}

/** No default VPC, a subnet outside the VPC, or no subnet that can give the instances public addresses. */
export class NetworkSetupError extends AwsBackendError {}

/** `--my-ip` (or POE_BENCH_MY_IP) is required: the backend makes no network call to discover it. */
export class CallerAddressMissingError extends AwsBackendError {
  constructor() {
    super(
      'the caller address is required: pass --my-ip <address or CIDR> or set POE_BENCH_MY_IP ' +
        "(the security group opens SSH and the harness ports only to the run's instances and to this address)",
    );
  }
}

/** Creation needs a yes: on a terminal the user answers, elsewhere `--yes` says it. */
export class ConfirmationRequiredError extends AwsBackendError {
  constructor(what: string) {
    super(`${what} needs confirmation, and stdin is not a terminal: pass --yes to confirm non-interactively`);
  }
}

/** The user answered no. */
export class NotConfirmedError extends AwsBackendError {
  constructor(message = 'not confirmed: nothing was created') {
    super(message);
  }
}

/** The instances did not reach `running` (the waiter gave up, or one went to shutting-down). */
export class InstancesNotRunningError extends AwsBackendError {}

/** The instances run but sshd did not answer on every host before the deadline. */
export class SshNotReadyError extends AwsBackendError {
  constructor(
    readonly hosts: readonly string[],
    waitedMs: number,
  ) {
    super(`no SSH banner from ${hosts.join(', ')} within ${Math.round(waitedMs / 1000)} s`);
  }
}

/** SIGINT or SIGTERM arrived during the provisioned section; the run was torn down. */
export class InterruptedError extends AwsBackendError {
  constructor(readonly signal: string) {
    super(`interrupted by ${signal}`);
  }
}

/** Some resources could not be removed; the message says which and how to retry. */
export class TeardownError extends AwsBackendError {
  constructor(
    readonly runIds: readonly string[],
    readonly failures: readonly string[],
    cause?: unknown,
  ) {
    const retry = runIds.length === 1 ? `poe-bench infra aws down --run ${runIds[0]}` : 'poe-bench infra aws down';
    super(`teardown incomplete (${failures.join('; ')}); run \`${retry}\` to retry`, { cause });
  }
}

/** Any other failed EC2 call, named by its step. */
export class AwsStepError extends AwsBackendError {
  constructor(
    readonly step: string,
    readonly code: string,
    detail: string,
    cause?: unknown,
  ) {
    super(`EC2 ${step} failed: ${code}: ${detail}`, { cause });
  }
}

/** The SDK error fields the backend reads; every SDK error has `name`, network errors `code`. */
interface SdkErrorLike {
  readonly name?: unknown;
  readonly code?: unknown;
  readonly message?: unknown;
  readonly hostname?: unknown;
}

function fields(err: unknown): { name: string; code: string; message: string; hostname: string } {
  const e = (typeof err === 'object' && err !== null ? err : {}) as SdkErrorLike;
  return {
    name: typeof e.name === 'string' ? e.name : 'Error',
    code: typeof e.code === 'string' ? e.code : '',
    message: typeof e.message === 'string' ? e.message : String(err),
    hostname: typeof e.hostname === 'string' ? e.hostname : '',
  };
}

/** The error name EC2 uses for "would have succeeded" when a call carries DryRun: true. */
export const DRY_RUN_OK = 'DryRunOperation';

/** The EC2 error code of an SDK error (`InvalidGroup.NotFound`, ...), or '' for other errors. */
export function awsErrorCode(err: unknown): string {
  return fields(err).name;
}

const REJECTED_CREDENTIALS = new Set([
  'AuthFailure',
  'InvalidClientTokenId',
  'UnrecognizedClientException',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'RequestExpired',
]);

/** Maps what the SDK threw during `step` to one of the classes above. */
export function translateAwsError(err: unknown, step: string, region: string): Error {
  if (err instanceof AwsBackendError) return err;
  const { name, code, message, hostname } = fields(err);
  if (name === 'CredentialsProviderError') return new MissingCredentialsError(err);
  if (REJECTED_CREDENTIALS.has(name)) return new CredentialsRejectedError(name, message, err);
  if (name === 'UnauthorizedOperation') return new PermissionDeniedError(step, message, err);
  if (name === 'OptInRequired') return new RegionNotEnabledError(region, err);
  // A region that does not exist has no endpoint: the SDK builds ec2.<region>.amazonaws.com and
  // the DNS lookup fails before any request is sent.
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new UnknownRegionError(
      region,
      `cannot resolve the EC2 endpoint ${hostname || `ec2.${region}.amazonaws.com`} (a misspelt region, or no network)`,
      err,
    );
  }
  return new AwsStepError(step, name === 'Error' && code ? code : name, message, err);
}
