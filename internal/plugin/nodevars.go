package plugin

import (
	"slices"
	"text/template"
	"text/template/parse"
)

// NodeVars are the template variables that make a template point at one
// node.
var NodeVars = []string{"Address", "Host", "Port"}

// UsesNodeVars reports whether the template src refers to one of NodeVars,
// as a field ({{.Address}}) or through index ({{index . "Address"}}): a
// counter whose URL or query uses them is read from each node by default.
func UsesNodeVars(src string) bool {
	t, err := template.New("").Parse(src)
	if err != nil || t.Tree == nil {
		return false
	}
	var walk func(n parse.Node) bool
	walkList := func(l *parse.ListNode) bool {
		return l != nil && slices.ContainsFunc(l.Nodes, walk)
	}
	walkBranch := func(b *parse.BranchNode) bool {
		return walk(b.Pipe) || walkList(b.List) || walkList(b.ElseList)
	}
	walk = func(n parse.Node) bool {
		switch n := n.(type) {
		case *parse.ListNode:
			return walkList(n)
		case *parse.ActionNode:
			return walk(n.Pipe)
		case *parse.PipeNode:
			if n == nil {
				return false
			}
			for _, c := range n.Cmds {
				if walk(c) {
					return true
				}
			}
		case *parse.CommandNode:
			return slices.ContainsFunc(n.Args, walk)
		case *parse.FieldNode:
			return len(n.Ident) > 0 && slices.Contains(NodeVars, n.Ident[0])
		case *parse.ChainNode:
			return walk(n.Node) || (len(n.Field) > 0 && slices.Contains(NodeVars, n.Field[0]))
		case *parse.VariableNode:
			// $.Address
			return len(n.Ident) > 1 && n.Ident[0] == "$" && slices.Contains(NodeVars, n.Ident[1])
		case *parse.StringNode:
			return slices.Contains(NodeVars, n.Text)
		case *parse.IfNode:
			return walkBranch(&n.BranchNode)
		case *parse.RangeNode:
			return walkBranch(&n.BranchNode)
		case *parse.WithNode:
			return walkBranch(&n.BranchNode)
		case *parse.TemplateNode:
			return walk(n.Pipe)
		}
		return false
	}
	return walk(t.Root)
}
