-- Argo CD health check for caduceus.dev/MessengerInstance.
--
-- Installed as resource.customizations.health.caduceus.dev_MessengerInstance
-- in argocd-cm: argocd-cm-patch.yaml inlines this file and is generated from
-- it by hack/argocd-cm.sh. Tests: tests/argocd/run.lua.
--
-- Argo CD runs the script with gopher-lua (Lua 5.1), the resource as the
-- global `obj`, and only the base and table libraries: no string or math
-- library, so no string methods here.
--
-- The first rule that matches decides:
--   1. no status, or status for an older generation        Progressing
--   2. Stalled=True, or a stage Failed or Blocked          Degraded
--   3. spec.paused                                          Suspended
--   4. a stage Provisioning, BackingUp, Upgrading,
--      Verifying, or Waiting (soak, window, schema check)   Progressing
--   5. a paused stage held in Waiting                       Suspended
--   6. Ready=True                                           Healthy
--   7. anything else (Ready False or missing)               Progressing

local hs = {}

local function number(value)
  -- Numbers arrive as numbers, but json.Number values arrive as strings.
  if value == nil then
    return nil
  end
  return tonumber(value)
end

local function list(value)
  if type(value) == "table" then
    return value
  end
  return {}
end

local function text(value)
  if value == nil then
    return ""
  end
  return tostring(value)
end

local generation = number(obj.metadata and obj.metadata.generation)
local status = obj.status
local spec = obj.spec or {}

if type(status) ~= "table" or number(status.observedGeneration) == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the caduceus operator to report status"
  return hs
end

local observed = number(status.observedGeneration)
if generation ~= nil and observed ~= generation then
  hs.status = "Progressing"
  hs.message = "waiting for the caduceus operator to observe generation " .. generation
    .. " (status describes generation " .. observed .. ")"
  return hs
end

-- Conditions written for another generation than the status says are stale.
local conditions = {}
for _, condition in ipairs(list(status.conditions)) do
  if condition.type ~= nil then
    conditions[condition.type] = condition
  end
end
local function current(condition)
  local at = number(condition.observedGeneration)
  return at == nil or generation == nil or at == generation
end
local function isTrue(kind)
  local condition = conditions[kind]
  return condition ~= nil and condition.status == "True" and current(condition)
end

local ready = conditions["Ready"]
if ready ~= nil and not current(ready) then
  hs.status = "Progressing"
  hs.message = "waiting for the caduceus operator to observe generation " .. generation
    .. " (condition Ready describes generation " .. number(ready.observedGeneration) .. ")"
  return hs
end

if isTrue("Stalled") then
  hs.status = "Degraded"
  hs.message = text(conditions["Stalled"].message)
  if hs.message == "" then
    hs.message = "stalled: " .. text(conditions["Stalled"].reason)
  end
  return hs
end

local pausedStages = {}
for _, stage in ipairs(list(spec.stages)) do
  if stage.name ~= nil and stage.paused == true then
    pausedStages[stage.name] = true
  end
end

local moving = {
  Provisioning = true,
  BackingUp = true,
  Upgrading = true,
  Verifying = true,
  Waiting = true,
}

local failed = {}
local progressing = {}
local held = {}
local notReady = {}
for _, stage in ipairs(list(status.stages)) do
  local name = text(stage.name)
  local phase = text(stage.phase)
  local line = "stage " .. name .. " " .. phase
  if text(stage.message) ~= "" then
    line = line .. ": " .. text(stage.message)
  end
  if phase == "Failed" or phase == "Blocked" then
    table.insert(failed, line)
  elseif phase == "Waiting" and pausedStages[name] then
    table.insert(held, line)
  elseif moving[phase] then
    table.insert(progressing, line)
  end
  if phase ~= "Ready" then
    table.insert(notReady, line)
  end
end

if #failed > 0 then
  hs.status = "Degraded"
  hs.message = table.concat(failed, "; ")
  return hs
end

if spec.paused == true then
  hs.status = "Suspended"
  hs.message = "paused by spec.paused: no rollout starts; running workloads stay as they are"
  if #notReady > 0 then
    hs.message = hs.message .. "; " .. table.concat(notReady, "; ")
  end
  return hs
end

if #progressing > 0 then
  hs.status = "Progressing"
  hs.message = table.concat(progressing, "; ")
  return hs
end

if #held > 0 then
  hs.status = "Suspended"
  hs.message = "paused by spec.stages[].paused: " .. table.concat(held, "; ")
  return hs
end

if isTrue("Ready") then
  hs.status = "Healthy"
  hs.message = text(ready.message)
  if hs.message == "" then
    hs.message = "Ready"
  end
  if isTrue("Degraded") then
    hs.message = hs.message .. " (needs attention: " .. text(conditions["Degraded"].message) .. ")"
  end
  return hs
end

hs.status = "Progressing"
if ready ~= nil and text(ready.message) ~= "" then
  hs.message = text(ready.message)
else
  hs.message = "waiting for condition Ready"
end
return hs
