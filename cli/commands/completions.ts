/**
 * `aspen completions bash|zsh|fish`: completion scripts generated from the
 * command tree, so they never drift from the commands.
 *
 * @module
 */
import { Command, type CommandUnknownOpts } from "@commander-js/extra-typings";
import { UsageError } from "./_context.ts";

interface Node {
  readonly path: string[];
  readonly subcommands: string[];
  readonly options: string[];
}

function walk(
  command: CommandUnknownOpts,
  path: string[],
  out: Node[],
): Node[] {
  out.push({
    path,
    subcommands: command.commands.map((c) => c.name()),
    options: command.options.flatMap((o) => [o.long, o.short]).filter((
      o,
    ): o is string => o !== undefined),
  });
  for (const sub of command.commands) walk(sub, [...path, sub.name()], out);
  return out;
}

/** The bash script (zsh loads it through bashcompinit). */
export function bashScript(root: CommandUnknownOpts): string {
  const nodes = walk(root, [], []);
  const cases = nodes.map((n) =>
    `    "${n.path.join(" ")}") words="${
      [...n.subcommands, ...n.options, "--help"].join(" ")
    }" ;;`
  ).join("\n");
  return `# aspen bash completion: eval "$(aspen completions bash)"
_aspen() {
  local cur aspen_path="" word i
  cur="\${COMP_WORDS[COMP_CWORD]}"
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="\${COMP_WORDS[i]}"
    [[ "$word" == -* ]] && continue
    case "\${aspen_path:+$aspen_path }$word" in
${
    nodes.filter((n) => n.path.length > 0).map((n) =>
      `      "${n.path.join(" ")}") aspen_path="${n.path.join(" ")}" ;;`
    ).join("\n")
  }
    esac
  done
  local words=""
  case "$aspen_path" in
${cases}
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _aspen aspen
`;
}

/** The fish script. */
export function fishScript(root: CommandUnknownOpts): string {
  const lines = ["# aspen fish completion: aspen completions fish | source"];
  for (const node of walk(root, [], [])) {
    const condition = node.path.length === 0
      ? "__fish_use_subcommand"
      : `__fish_seen_subcommand_from ${node.path.at(-1)}`;
    for (const sub of node.subcommands) {
      lines.push(`complete -c aspen -f -n "${condition}" -a ${sub}`);
    }
    for (const option of node.options.filter((o) => o.startsWith("--"))) {
      lines.push(
        `complete -c aspen -f -n "${condition}" -l ${option.slice(2)}`,
      );
    }
  }
  return lines.join("\n") + "\n";
}

/** `aspen completions <shell>` */
export function completionsCommand(
  root: () => CommandUnknownOpts,
): CommandUnknownOpts {
  return new Command("completions")
    .description("Print a shell completion script (bash, zsh or fish)")
    .argument("<shell>", "bash, zsh or fish")
    .action((shell) => {
      if (shell === "bash") console.log(bashScript(root()));
      else if (shell === "zsh") {
        console.log(
          `# aspen zsh completion: eval "$(aspen completions zsh)"\nautoload -U +X bashcompinit && bashcompinit\n${
            bashScript(root())
          }`,
        );
      } else if (shell === "fish") console.log(fishScript(root()));
      else {throw new UsageError(
          `Unknown shell '${shell}': expected bash, zsh or fish`,
        );}
    });
}
