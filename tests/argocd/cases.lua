-- Test cases for config/argocd/health.lua, run by tests/argocd/run.lua.
--
-- Each case is a MessengerInstance as Argo CD hands it to the script (the
-- object decoded from JSON into Lua tables) and what the script must return:
-- `status` exactly, and `message` as a substring of hs.message. The status
-- messages are the ones the operator writes (src/status.rs,
-- src/plan/rollout/machine.rs).
--
-- Lua 5.1 has no JSON or YAML parser, so the cases are Lua tables; the
-- helpers below only shorten the repeated parts.

local function metadata(generation)
  return { name = "umessenger", namespace = "messenger", generation = generation }
end

local function condition(kind, status, reason, message, generation)
  return {
    type = kind,
    status = status,
    reason = reason,
    message = message,
    observedGeneration = generation,
    lastTransitionTime = "2026-11-24T01:00:00Z",
  }
end

-- The conditions the operator writes for generation `g` when every stage
-- is Ready.
local function settled(g)
  return {
    condition("Ready", "True", "AllStagesReady", "every stage runs its desired release", g),
    condition("Reconciling", "False", "Settled", "nothing in progress", g),
    condition("Stalled", "False", "NotStalled", "the operator can make progress", g),
    condition("Degraded", "False", "NoWarnings", "nothing needs attention", g),
  }
end

-- The conditions while the stages in `message` are not Ready.
local function progressing(g, message)
  return {
    condition("Ready", "False", "StagesNotReady", message, g),
    condition("Reconciling", "True", "Progressing", message, g),
    condition("Stalled", "False", "NotStalled", "the operator can make progress", g),
    condition("Degraded", "False", "NoWarnings", "nothing needs attention", g),
  }
end

local function stage(name, phase, synapse, message)
  return { name = name, phase = phase, release = { synapse = synapse, elementWeb = "v1.12.3" }, message = message }
end

local function specStages(productionPaused)
  return {
    { name = "beta", serverName = "beta.messenger.example.org", location = "frankfurt" },
    {
      name = "production",
      serverName = "messenger.example.org",
      location = "mainz",
      paused = productionPaused,
      release = { synapse = "v1.164.0", elementWeb = "v1.12.3" },
      promotion = {
        from = "beta",
        soak = "168h",
        windows = { { days = { "Tue" }, start = "02:00", duration = "3h", timeZone = "Europe/Berlin" } },
      },
    },
  }
end

local function spec(extra)
  local result = {
    release = { synapse = "v1.164.0", elementWeb = "v1.12.3" },
    stages = specStages(extra and extra.productionPaused),
  }
  if extra and extra.paused ~= nil then
    result.paused = extra.paused
  end
  return result
end

local function instance(generation, specValue, status)
  return {
    apiVersion = "caduceus.dev/v1alpha1",
    kind = "MessengerInstance",
    metadata = metadata(generation),
    spec = specValue,
    status = status,
  }
end

local SOAK = "beta has run v1.164.0 Ready for 4d20h of 7d; ready to roll out at 2026-11-27 00:00 UTC"
local WINDOW = "v1.164.0 is ready to roll out; next window Tue 02:00 Europe/Berlin (in 3d13h)"
local PAUSED = "paused; v1.164.0 is wanted, v1.163.2 keeps running"
local FLOOR = "v1.150.0 cannot run on this database: it knows schema version 88, but the database requires at least 92 "
  .. "(a newer Synapse has migrated it). Choose v1.160.0 or newer, or restore the stage from the backup taken before that upgrade"
local ROLLED_BACK = "the smoke test of v1.164.0 failed and the stage was rolled back to v1.163.2; "
  .. "fix the cause and delete the failed smoke-test Job to retry, or change the release"
local INVALID = "spec.stages[1].promotion.windows[0].timeZone: unknown time zone \"Europe/Mainz\"; use an IANA name such as Europe/Berlin"

local function both(betaPhase, betaRelease, betaMessage, productionPhase, productionRelease, productionMessage)
  return {
    stage("beta", betaPhase, betaRelease, betaMessage),
    stage("production", productionPhase, productionRelease, productionMessage),
  }
end

return {
  {
    name = "healthy: every stage Ready, generation observed",
    obj = instance(7, spec(), {
      observedGeneration = 7,
      conditions = settled(7),
      summary = "beta=Ready(v1.164.0) production=Ready(v1.164.0)",
      stages = both("Ready", "v1.164.0", "Synapse v1.164.0 is ready", "Ready", "v1.164.0", "Synapse v1.164.0 is ready"),
    }),
    expected = { status = "Healthy", message = "every stage runs its desired release" },
  },
  {
    name = "healthy, with a Degraded warning shown in the message",
    obj = instance(7, spec(), {
      observedGeneration = 7,
      conditions = {
        condition("Ready", "True", "AllStagesReady", "every stage runs its desired release", 7),
        condition("Reconciling", "False", "Settled", "nothing in progress", 7),
        condition("Stalled", "False", "NotStalled", "the operator can make progress", 7),
        condition("Degraded", "True", "NeedsAttention", "stage production: media is placed in frankfurt, away from Synapse in mainz", 7),
      },
      stages = both("Ready", "v1.164.0", nil, "Ready", "v1.164.0", nil),
    }),
    expected = { status = "Healthy", message = "needs attention: stage production: media is placed in frankfurt" },
  },
  {
    name = "healthy, numbers decoded as json.Number strings",
    obj = instance("7", spec(), {
      observedGeneration = "7",
      conditions = settled("7"),
      stages = both("Ready", "v1.164.0", nil, "Ready", "v1.164.0", nil),
    }),
    expected = { status = "Healthy", message = "every stage runs its desired release" },
  },
  {
    name = "no status at all",
    obj = instance(1, spec(), nil),
    expected = { status = "Progressing", message = "waiting for the caduceus operator to report status" },
  },
  {
    name = "empty status without observedGeneration",
    obj = instance(1, spec(), {}),
    expected = { status = "Progressing", message = "waiting for the caduceus operator" },
  },
  {
    name = "generation not yet observed, old status Ready",
    obj = instance(8, spec(), {
      observedGeneration = 7,
      conditions = settled(7),
      stages = both("Ready", "v1.163.2", nil, "Ready", "v1.163.2", nil),
    }),
    expected = { status = "Progressing", message = "observe generation 8 (status describes generation 7)" },
  },
  {
    name = "generation not yet observed, old status Stalled (the fix is pending)",
    obj = instance(9, spec(), {
      observedGeneration = 8,
      conditions = {
        condition("Ready", "False", "InvalidSpec", INVALID, 8),
        condition("Reconciling", "False", "Settled", "nothing in progress", 8),
        condition("Stalled", "True", "InvalidSpec", INVALID, 8),
      },
      stages = both("Ready", "v1.163.2", nil, "Ready", "v1.163.2", nil),
    }),
    expected = { status = "Progressing", message = "observe generation 9" },
  },
  {
    name = "condition Ready from an older generation than the status",
    obj = instance(8, spec(), {
      observedGeneration = 8,
      conditions = settled(7),
      stages = both("Ready", "v1.164.0", nil, "Ready", "v1.164.0", nil),
    }),
    expected = { status = "Progressing", message = "condition Ready describes generation 7" },
  },
  {
    name = "rollout: a new stage Provisioning",
    obj = instance(1, spec(), {
      observedGeneration = 1,
      conditions = progressing(1, "beta: Provisioning (waiting for Synapse v1.164.0: 0/1 pods ready)"),
      stages = {
        stage("beta", "Provisioning", nil, "waiting for Synapse v1.164.0: 0/1 pods ready"),
        stage("production", "Provisioning", nil, "waiting for Synapse v1.164.0: the StatefulSet does not exist yet"),
      },
    }),
    expected = { status = "Progressing", message = "stage beta Provisioning: waiting for Synapse v1.164.0" },
  },
  {
    name = "rollout: beta BackingUp",
    obj = instance(8, spec(), {
      observedGeneration = 8,
      conditions = progressing(8, "beta: BackingUp (taking the pre-upgrade backup before v1.164.0)"),
      stages = both("BackingUp", "v1.163.2", "taking the pre-upgrade backup before v1.164.0", "Ready", "v1.163.2", nil),
    }),
    expected = { status = "Progressing", message = "stage beta BackingUp: taking the pre-upgrade backup before v1.164.0" },
  },
  {
    name = "rollout: beta Upgrading",
    obj = instance(8, spec(), {
      observedGeneration = 8,
      conditions = progressing(8, "beta: Upgrading (rolling out v1.164.0)"),
      stages = both("Upgrading", "v1.163.2", "rolling out v1.164.0: waiting for its pods to move from v1.163.2", "Ready", "v1.163.2", nil),
    }),
    expected = { status = "Progressing", message = "stage beta Upgrading: rolling out v1.164.0" },
  },
  {
    name = "rollout: production Verifying",
    obj = instance(9, spec(), {
      observedGeneration = 9,
      conditions = progressing(9, "production: Verifying (running the smoke test against v1.164.0)"),
      stages = both("Ready", "v1.164.0", nil, "Verifying", "v1.163.2", "running the smoke test against v1.164.0"),
    }),
    expected = { status = "Progressing", message = "stage production Verifying: running the smoke test against v1.164.0" },
  },
  {
    name = "waiting for soak",
    obj = instance(9, spec(), {
      observedGeneration = 9,
      conditions = progressing(9, "production: Waiting (" .. SOAK .. ")"),
      stages = both("Ready", "v1.164.0", nil, "Waiting", "v1.163.2", SOAK),
    }),
    expected = { status = "Progressing", message = "stage production Waiting: beta has run v1.164.0 Ready for 4d20h of 7d" },
  },
  {
    name = "waiting for a maintenance window",
    obj = instance(9, spec(), {
      observedGeneration = 9,
      conditions = progressing(9, "production: Waiting (" .. WINDOW .. ")"),
      stages = both("Ready", "v1.164.0", nil, "Waiting", "v1.163.2", WINDOW),
    }),
    expected = { status = "Progressing", message = "next window Tue 02:00 Europe/Berlin" },
  },
  {
    name = "stalled: invalid spec",
    obj = instance(10, spec(), {
      observedGeneration = 10,
      conditions = {
        condition("Ready", "False", "InvalidSpec", INVALID, 10),
        condition("Reconciling", "False", "Settled", "nothing in progress", 10),
        condition("Stalled", "True", "InvalidSpec", INVALID, 10),
        condition("Degraded", "False", "NoWarnings", "nothing needs attention", 10),
      },
      stages = both("Ready", "v1.164.0", nil, "Ready", "v1.163.2", nil),
    }),
    expected = { status = "Degraded", message = "unknown time zone \"Europe/Mainz\"" },
  },
  {
    name = "stalled wins over spec.paused",
    obj = instance(10, spec({ paused = true }), {
      observedGeneration = 10,
      conditions = {
        condition("Ready", "False", "KeysMissing", "the keys Secret umessenger-production-keys is missing; restore it from the backup", 10),
        condition("Stalled", "True", "KeysMissing", "the keys Secret umessenger-production-keys is missing; restore it from the backup", 10),
      },
      stages = both("Ready", "v1.164.0", nil, "Blocked", "v1.163.2", "the keys Secret umessenger-production-keys is missing; restore it from the backup"),
    }),
    expected = { status = "Degraded", message = "keys Secret umessenger-production-keys is missing" },
  },
  {
    name = "a stage Blocked: target below the schema floor",
    obj = instance(11, spec(), {
      observedGeneration = 11,
      conditions = progressing(11, "production: Blocked (" .. FLOOR .. ")"),
      stages = both("Ready", "v1.164.0", nil, "Blocked", "v1.163.2", FLOOR),
    }),
    expected = { status = "Degraded", message = "stage production Blocked: v1.150.0 cannot run on this database" },
  },
  {
    name = "a stage Failed: smoke test failed, rolled back",
    obj = instance(9, spec(), {
      observedGeneration = 9,
      conditions = {
        condition("Ready", "False", "StagesNotReady", "production: Failed (" .. ROLLED_BACK .. ")", 9),
        condition("Reconciling", "True", "Progressing", "production: Failed (" .. ROLLED_BACK .. ")", 9),
        condition("Stalled", "False", "NotStalled", "the operator can make progress", 9),
        condition("Degraded", "True", "NeedsAttention", "stage production: " .. ROLLED_BACK, 9),
      },
      stages = both("Ready", "v1.164.0", nil, "Failed", "v1.163.2", ROLLED_BACK),
    }),
    expected = { status = "Degraded", message = "stage production Failed: the smoke test of v1.164.0 failed" },
  },
  {
    name = "a stage Failed while another one is upgrading",
    obj = instance(9, spec(), {
      observedGeneration = 9,
      conditions = progressing(9, "beta: Upgrading; production: Failed"),
      stages = both("Upgrading", "v1.163.2", "rolling out v1.164.0", "Failed", "v1.163.2", ROLLED_BACK),
    }),
    expected = { status = "Degraded", message = "stage production Failed" },
  },
  {
    name = "a stage Failed while the instance is paused",
    obj = instance(9, spec({ paused = true }), {
      observedGeneration = 9,
      conditions = progressing(9, "production: Failed (" .. ROLLED_BACK .. ")"),
      stages = both("Ready", "v1.164.0", nil, "Failed", "v1.163.2", ROLLED_BACK),
    }),
    expected = { status = "Degraded", message = "rolled back to v1.163.2" },
  },
  {
    name = "paused instance holding a release back",
    obj = instance(12, spec({ paused = true }), {
      observedGeneration = 12,
      conditions = progressing(12, "beta: Waiting (" .. PAUSED .. "); production: Waiting (" .. PAUSED .. ")"),
      stages = both("Waiting", "v1.163.2", PAUSED, "Waiting", "v1.163.2", PAUSED),
    }),
    expected = { status = "Suspended", message = "paused by spec.paused" },
  },
  {
    name = "paused instance with every stage Ready",
    obj = instance(12, spec({ paused = true }), {
      observedGeneration = 12,
      conditions = settled(12),
      stages = both("Ready", "v1.164.0", nil, "Ready", "v1.164.0", nil),
    }),
    expected = { status = "Suspended", message = "running workloads stay as they are" },
  },
  {
    name = "paused instance whose generation is not yet observed",
    obj = instance(13, spec({ paused = true }), {
      observedGeneration = 12,
      conditions = settled(12),
      stages = both("Ready", "v1.164.0", nil, "Ready", "v1.164.0", nil),
    }),
    expected = { status = "Progressing", message = "observe generation 13" },
  },
  {
    name = "paused stage holding production back",
    obj = instance(14, spec({ productionPaused = true }), {
      observedGeneration = 14,
      conditions = progressing(14, "production: Waiting (" .. PAUSED .. ")"),
      stages = both("Ready", "v1.164.0", nil, "Waiting", "v1.163.2", PAUSED),
    }),
    expected = { status = "Suspended", message = "stage production Waiting: paused; v1.164.0 is wanted" },
  },
  {
    name = "paused stage while another stage rolls out",
    obj = instance(14, spec({ productionPaused = true }), {
      observedGeneration = 14,
      conditions = progressing(14, "beta: Upgrading; production: Waiting"),
      stages = both("Upgrading", "v1.163.2", "rolling out v1.164.0: waiting for 1/2 pods ready", "Waiting", "v1.163.2", PAUSED),
    }),
    expected = { status = "Progressing", message = "stage beta Upgrading" },
  },
  {
    name = "paused stage already running its release",
    obj = instance(14, spec({ productionPaused = true }), {
      observedGeneration = 14,
      conditions = settled(14),
      stages = both("Ready", "v1.164.0", nil, "Ready", "v1.164.0", nil),
    }),
    expected = { status = "Healthy", message = "every stage runs its desired release" },
  },
  {
    name = "Ready False without a moving stage",
    obj = instance(2, { release = { synapse = "v1.164.0" }, stages = {} }, {
      observedGeneration = 2,
      conditions = {
        condition("Ready", "False", "NoStages", "the instance has no stages", 2),
        condition("Stalled", "False", "NotStalled", "the operator can make progress", 2),
      },
    }),
    expected = { status = "Progressing", message = "the instance has no stages" },
  },
}
