{#- The district (district of the city of Antwerp) of a Belgian postcode, 'buiten Antwerpen'
    for another postcode, null without one. Postcodes 2000-2060 are the district Antwerpen
    itself (2030 the port, 2050 Linkeroever); the other districts have their own code. -#}
{% macro antwerp_district(postcode_column) -%}
    case
        when nullif(trim({{ postcode_column }}), '') is null then null
        when trim({{ postcode_column }}) in ('2000', '2018', '2020', '2030', '2050', '2060')
            then 'Antwerpen'
        when trim({{ postcode_column }}) = '2040' then 'Berendrecht-Zandvliet-Lillo'
        when trim({{ postcode_column }}) = '2100' then 'Deurne'
        when trim({{ postcode_column }}) = '2140' then 'Borgerhout'
        when trim({{ postcode_column }}) = '2170' then 'Merksem'
        when trim({{ postcode_column }}) = '2180' then 'Ekeren'
        when trim({{ postcode_column }}) = '2600' then 'Berchem'
        when trim({{ postcode_column }}) = '2610' then 'Wilrijk'
        when trim({{ postcode_column }}) = '2660' then 'Hoboken'
        else 'buiten Antwerpen'
    end
{%- endmacro %}
