{#- Survivorship order of a record by its role (role maps one-to-one to a source kind,
    so a second ticket shop ranks like the first): lower is more trusted. -#}
{% macro trust_rank(role_column) -%}
    case {{ role_column }}
        when 'account' then 1
        when 'contact' then 2
        when 'participant' then 3
        when 'buyer' then 4
        when 'subscriber' then 5
        when 'device' then 6
        when 'visitor' then 7
        else 9
    end
{%- endmacro %}
