-- Runs config/argocd/health.lua against the cases in tests/argocd/cases.lua
-- and checks that config/argocd/argocd-cm-patch.yaml inlines the current
-- script. Run with a Lua 5.1 interpreter from anywhere:
--
--   lua5.1 tests/argocd/run.lua
--
-- Prints one line per check and a last line `N passed, M failed`; exits
-- non-zero on any failure.
--
-- The script runs the way Argo CD runs a configured health check (see
-- util/lua/lua.go in Argo CD): the resource as the global `obj`, the script
-- text executed as one chunk whose return value is the health, and only the
-- base, package, table and a reduced os library loaded: no string, math, io
-- or debug library, and no string methods.

local here = arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or "."
local root = here .. "/../.."

local function read(path)
  local file, err = io.open(path, "rb")
  if not file then
    error("cannot read " .. path .. ": " .. tostring(err), 0)
  end
  local content = file:read("*a")
  file:close()
  return content
end

local HEALTH = root .. "/config/argocd/health.lua"
local PATCH = root .. "/config/argocd/argocd-cm-patch.yaml"
local KEY = "resource.customizations.health.caduceus.dev_MessengerInstance"

local script = read(HEALTH)
local chunk, syntax = loadstring(script, "=config/argocd/health.lua")
if not chunk then
  print("FAIL health.lua does not compile: " .. syntax)
  print("0 passed, 1 failed")
  os.exit(1)
end
local cases = dofile(here .. "/cases.lua")

local function copy(value)
  if type(value) ~= "table" then
    return value
  end
  local result = {}
  for k, v in pairs(value) do
    result[k] = copy(v)
  end
  return result
end

-- The globals Argo CD's Lua state has: the base library, `package` and
-- `require`, `table`, and an os library reduced to time and date.
local BASE = {
  "assert", "collectgarbage", "dofile", "error", "getfenv", "getmetatable", "ipairs", "load",
  "loadfile", "loadstring", "module", "next", "pairs", "pcall", "print", "rawequal", "rawget",
  "rawset", "require", "select", "setfenv", "setmetatable", "tonumber", "tostring", "type",
  "unpack", "xpcall", "_VERSION",
}
local function environment(obj)
  local env = {}
  for _, name in ipairs(BASE) do
    env[name] = _G[name]
  end
  env.package = package
  env.table = copy(table)
  env.os = { time = os.time, date = os.date }
  env._G = env
  env.obj = obj
  return env
end

-- Executes the script on `obj` the way Argo CD does; returns ok, hs or error.
local stringMeta = getmetatable("")
local function health(obj)
  setfenv(chunk, environment(copy(obj)))
  local stringIndex = stringMeta.__index
  stringMeta.__index = nil -- no string library, so no ("x"):method()
  local ok, result = pcall(chunk)
  stringMeta.__index = stringIndex
  return ok, result
end

local VALID = { Healthy = true, Progressing = true, Degraded = true, Suspended = true, Missing = true }

local passed, failed = 0, 0
local function report(ok, name, detail)
  if ok then
    passed = passed + 1
    print("ok    " .. name .. " -> " .. detail)
  else
    failed = failed + 1
    print("FAIL  " .. name .. ": " .. detail)
  end
end

for index, case in ipairs(cases) do
  local name = case.name or ("case " .. index)
  local ok, hs = health(case.obj)
  if not ok then
    report(false, name, "the script raised an error: " .. tostring(hs))
  elseif type(hs) ~= "table" then
    report(false, name, "the script returned " .. type(hs) .. ", not a table")
  elseif not VALID[hs.status] then
    report(false, name, "invalid hs.status " .. tostring(hs.status))
  elseif type(hs.message) ~= "string" or hs.message == "" then
    report(false, name, "hs.message is not a non-empty string: " .. tostring(hs.message))
  elseif hs.status ~= case.expected.status then
    report(false, name, "expected " .. case.expected.status .. ", got " .. hs.status .. " (" .. hs.message .. ")")
  elseif case.expected.message and not hs.message:find(case.expected.message, 1, true) then
    report(false, name, "expected a message containing \"" .. case.expected.message .. "\", got \"" .. hs.message .. "\"")
  else
    report(true, name, hs.status .. ": " .. hs.message)
  end
end

-- The YAML block scalar (`key: |`, clip chomping) under KEY in the patch.
local function inlined(yaml)
  local lines = {}
  for line in (yaml .. "\n"):gmatch("([^\n]*)\n") do
    table.insert(lines, line)
  end
  local keyIndent
  local body = {}
  local indent
  for _, line in ipairs(lines) do
    if keyIndent == nil then
      local spaces, key = line:match("^( *)([^ :]+): |%s*$")
      if key == KEY then
        keyIndent = #spaces
      end
    elseif line:match("^ *$") then
      table.insert(body, "")
    else
      local spaces = #line:match("^( *)")
      indent = indent or spaces
      if spaces < indent or spaces <= keyIndent then
        break
      end
      table.insert(body, line:sub(indent + 1))
    end
  end
  if keyIndent == nil then
    return nil
  end
  while #body > 0 and body[#body] == "" do
    table.remove(body)
  end
  return table.concat(body, "\n") .. "\n"
end

local patchOk, patch = pcall(read, PATCH)
if not patchOk then
  report(false, "argocd-cm-patch.yaml inlines health.lua", patch)
else
  local embedded = inlined(patch)
  if embedded == nil then
    report(false, "argocd-cm-patch.yaml inlines health.lua", "no `" .. KEY .. ": |` block")
  elseif embedded ~= script then
    report(false, "argocd-cm-patch.yaml inlines health.lua", "stale: run hack/argocd-cm.sh")
  else
    report(true, "argocd-cm-patch.yaml inlines health.lua", "current")
  end
end

print(passed .. " passed, " .. failed .. " failed")
if failed > 0 then
  os.exit(1)
end
